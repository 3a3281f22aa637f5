package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/internal/redistest"
	"github.com/polysocket/polysocket/metrics"
	"github.com/polysocket/polysocket/redisbus"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape serves the metrics and returns the text.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	return rec.Body.String()
}

func has(t *testing.T, text, line string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("metrics lack %q", line)
}

func TestMiddlewareCountsAndFlushes(t *testing.T) {
	m := metrics.New()
	mux := http.NewServeMux()
	mux.HandleFunc("/j/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("x"))
		// The relay flushes polls through the controller: the recorder
		// must unwrap.
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the middleware: %v", err)
		}
	})
	mux.HandleFunc("/s/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusRequestEntityTooLarge) })
	mux.HandleFunc("/create", func(w http.ResponseWriter, r *http.Request) {})
	srv := httptest.NewServer(m.Middleware(mux))
	defer srv.Close()
	for _, p := range []string{"/j/a", "/j/b", "/s/a", "/create", "/nope"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	srv.Client().CloseIdleConnections()
	text := scrape(t, m)
	has(t, text, `polysocket_http_responses_total{endpoint="poll",status="200"} 2`)
	has(t, text, `polysocket_http_responses_total{endpoint="send",status="413"} 1`)
	has(t, text, `polysocket_http_responses_total{endpoint="create",status="200"} 1`)
	has(t, text, `polysocket_http_responses_total{endpoint="other",status="404"} 1`)
	has(t, text, `polysocket_limit_refusals_total{limit="size"} 1`)
}

func TestRelayAndRouterHooks(t *testing.T) {
	m := metrics.New()
	m.Established("ok", false, 10*time.Millisecond)
	m.Established(control.CodeUnavailable, true, time.Millisecond)
	m.SessionEnded(session.CauseClient, 1000)
	m.SessionEnded(session.CauseTarget, 1006)
	m.SessionEnded(session.CauseTarget, 1009)
	m.SessionEnded(session.CauseTarget, 4000)
	m.SessionEnded(session.CauseIdle, 1001)
	m.SessionEnded(session.CauseShutdown, 1001)
	m.OnCreate("ok", "", time.Millisecond)
	m.OnCreate(control.CodeLimit, "failed", time.Millisecond)
	m.OnCreate("ok", "timeout", time.Millisecond)
	m.OnCreate("ok", "remembered", time.Millisecond)
	m.LimitRefused(metrics.LimitRate)
	m.SetDraining(true)
	m.RelayLimits(100, 4096)
	c := m.SessionCounters()
	c.MessagesToTarget.Add(1)
	c.BytesToTarget.Add(5)
	c.PollsHeld.Add(1)
	c.PollSeconds[session.PollMessages].Observe(0.3)
	c.PollSeconds[session.PollHeartbeat].Observe(25)
	text := scrape(t, m)
	for _, l := range []string{
		`polysocket_sessions_created_total 1`,
		`polysocket_establish_seconds_count{result="ok"} 1`,
		`polysocket_establish_seconds_count{result="unavailable"} 1`,
		`polysocket_limit_refusals_total{limit="capacity"} 1`,
		`polysocket_limit_refusals_total{limit="token"} 1`,
		`polysocket_limit_refusals_total{limit="rate"} 1`,
		`polysocket_sessions_ended_total{reason="client"} 1`,
		`polysocket_sessions_ended_total{reason="target_lost"} 1`,
		`polysocket_sessions_ended_total{reason="too_large"} 1`,
		`polysocket_sessions_ended_total{reason="target_close"} 1`,
		`polysocket_sessions_ended_total{reason="idle"} 1`,
		`polysocket_sessions_ended_total{reason="shutdown"} 1`,
		`polysocket_creates_total{code="ok",why="unspecified"} 1`,
		`polysocket_creates_total{code="limit",why="failed"} 1`,
		`polysocket_creates_total{code="ok",why="timeout"} 1`,
		`polysocket_creates_total{code="ok",why="remembered"} 1`,
		`polysocket_messages_total{direction="to_target"} 1`,
		`polysocket_message_bytes_total{direction="to_target"} 5`,
		`polysocket_polls_held 1`,
		`polysocket_poll_duration_seconds_bucket{outcome="messages",le="0.25"} 0`,
		`polysocket_poll_duration_seconds_bucket{outcome="messages",le="0.5"} 1`,
		`polysocket_poll_duration_seconds_count{outcome="messages"} 1`,
		`polysocket_poll_duration_seconds_bucket{outcome="heartbeat",le="20"} 0`,
		`polysocket_poll_duration_seconds_bucket{outcome="heartbeat",le="30"} 1`,
		`polysocket_poll_duration_seconds_count{outcome="gone"} 0`,
		`polysocket_draining 1`,
		`polysocket_capacity 100`,
		`polysocket_max_buffered_total_bytes 4096`,
	} {
		has(t, text, l)
	}
}

// TestBusErrors counts the failures of a real Redis bus whose server
// has gone.
func TestBusErrors(t *testing.T) {
	rs := redistest.Start(t)
	rb, err := redisbus.New(redisbus.Config{URL: rs.URL()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	m := metrics.New()
	rt, rl, toks := m.RouterBus(rb), m.RelayBus(rb), m.TokenStore(rb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := toks.Token(ctx, "unknown"); err == nil {
		t.Fatal("unknown token found")
	}
	if _, err := rt.Relays(ctx); err != nil {
		t.Fatal(err)
	}
	rs.Stop()
	for _, call := range []func(context.Context) error{
		func(ctx context.Context) error { _, err := rt.Relays(ctx); return err },
		func(ctx context.Context) error {
			return rl.Register(ctx, control.RelayInfo{ID: "r", FQDN: "f", Capacity: 1})
		},
		func(ctx context.Context) error { _, err := toks.Token(ctx, "x"); return err },
	} {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := call(cctx); err == nil {
			t.Error("a call to a stopped Redis succeeded")
		}
		cancel()
	}
	text := scrape(t, m)
	for _, op := range []string{"relays", "register", "token"} {
		has(t, text, `polysocket_bus_errors_total{op="`+op+`"} 1`)
	}
	if n := strings.Count(text, "\npolysocket_bus_errors_total{"); n != 3 {
		t.Errorf("%d bus error series, want 3 (an unknown token is no error)", n)
	}
}
