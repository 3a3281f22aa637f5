package ops

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// TestMetricsAfterTraffic drives real sessions through `both` and checks
// the metrics the traffic must have moved, by name and value.
func TestMetricsAfterTraffic(t *testing.T) {
	echo := testenv.NewTarget(t, testenv.TargetOptions{})
	// bye reads one message and closes with 4000.
	bye := testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) {
		if _, _, err := c.Read(ctx); err == nil {
			_ = c.Close(4000, "bye")
		}
	}})
	p := startProc(t, proctest.Options{}, "both", "--echo=false", "--create-rate", "0", "--max-message", "100")
	cl := &testenv.Client{Base: p.URL(), HTTP: p.Client()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	gauge := func(name string) float64 { return scrape(t, p)[name] }

	// Session 1: echo, with a held poll and buffered bytes observed.
	s1 := cl.Open(t, echo.URL, url.Values{"why": {"failed"}})
	held := make(chan testenv.PollReply, 1)
	go func() {
		r, _, _ := s1.Poll(ctx, 5*time.Second)
		held <- r
	}()
	testenv.WaitFor(t, 5*time.Second, "polls_held 1", func() bool { return gauge("polysocket_polls_held") == 1 })
	sent(t)(s1.SendText(ctx, "hello"))
	if r := <-held; len(r.Messages) != 1 || r.Messages[0].Data != "hello" {
		t.Fatalf("held poll answered %+v", r)
	}
	testenv.WaitFor(t, 5*time.Second, "polls_held 0", func() bool { return gauge("polysocket_polls_held") == 0 })
	sent(t)(s1.SendText(ctx, "world"))
	// Acked delivery keeps both echoes buffered until a poll acks them.
	testenv.WaitFor(t, 5*time.Second, "buffered_bytes 10", func() bool { return gauge("polysocket_buffered_bytes") == 10 })
	if m := gauge("polysocket_buffered_memory_bytes"); m != 10+2*72 {
		t.Fatalf("buffered_memory_bytes %v, want 154 (two messages, 72 bytes of bookkeeping each)", m)
	}
	sent(t)(s1.SendBinary(ctx, []byte{1, 2, 3, 4}))
	if got := s1.Collect(t, 2, 10*time.Second); len(got) != 2 {
		t.Fatalf("collected %+v", got)
	}
	if st, err := s1.SendRaw(ctx, url.Values{"t": {"t"}, "d": {strings.Repeat("x", 101)}}); err != nil || st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize send: status %d, %v", st, err)
	}
	if st, err := s1.Close(ctx, 1000, "done"); err != nil || st != http.StatusOK {
		t.Fatalf("close: %d %v", st, err)
	}

	// Session 2: the target closes after one message.
	s2 := cl.Open(t, bye.URL, url.Values{"why": {"none"}})
	sent(t)(s2.SendText(ctx, "last"))
	if got := s2.Collect(t, 1, 10*time.Second); len(got) != 1 || got[0].Type != "close" || got[0].Code != 4000 {
		t.Fatalf("session 2 got %+v", got)
	}

	// Refused creates.
	bad := &testenv.Client{Base: p.URL(), HTTP: p.Client(), Token: "nope"}
	if r, _, err := bad.Create(ctx, echo.URL, nil); err != nil || r.Code != "token" {
		t.Fatalf("bad token: %+v %v", r, err)
	}
	if r, _, err := cl.Create(ctx, "ws://127.0.0.1:1/", url.Values{"why": {"forced"}}); err != nil || r.Code != "dial" {
		t.Fatalf("closed port: %+v %v", r, err)
	}

	testenv.WaitFor(t, 10*time.Second, "sessions to end", func() bool {
		m := scrape(t, p)
		return m["polysocket_sessions_live"] == 0 && m[`polysocket_sessions_ended_total{reason="target_close"}`] == 1
	})
	m := scrape(t, p)
	want := map[string]float64{
		`polysocket_sessions_live`:                                        0,
		`polysocket_sessions_created_total`:                               2,
		`polysocket_sessions_ended_total{reason="client"}`:                1,
		`polysocket_sessions_ended_total{reason="target_close"}`:          1,
		`polysocket_sessions_ended_total{reason="idle"}`:                  0,
		`polysocket_messages_total{direction="to_target"}`:                4,
		`polysocket_message_bytes_total{direction="to_target"}`:           5 + 5 + 4 + 4,
		`polysocket_messages_total{direction="from_target"}`:              3,
		`polysocket_message_bytes_total{direction="from_target"}`:         5 + 5 + 4,
		`polysocket_polls_held`:                                           0,
		`polysocket_creates_total{code="ok",why="failed"}`:                1,
		`polysocket_creates_total{code="ok",why="none"}`:                  1,
		`polysocket_creates_total{code="token",why="unspecified"}`:        1,
		`polysocket_creates_total{code="dial",why="forced"}`:              1,
		`polysocket_establish_seconds_count{result="ok"}`:                 2,
		`polysocket_establish_seconds_count{result="dial"}`:               1,
		`polysocket_http_responses_total{endpoint="send",status="201"}`:   4,
		`polysocket_http_responses_total{endpoint="send",status="413"}`:   1,
		`polysocket_http_responses_total{endpoint="close",status="200"}`:  1,
		`polysocket_http_responses_total{endpoint="create",status="200"}`: 2,
		`polysocket_http_responses_total{endpoint="create",status="403"}`: 1,
		`polysocket_http_responses_total{endpoint="create",status="502"}`: 1,
		`polysocket_limit_refusals_total{limit="size"}`:                   1,
		`polysocket_limit_refusals_total{limit="capacity"}`:               0,
		`polysocket_draining`:                                             0,
		`polysocket_create_seconds_count{code="ok"}`:                      2,
		`polysocket_sessions_ended_total{reason="shutdown"}`:              0,
		`polysocket_limit_refusals_total{limit="token"}`:                  0,
		`polysocket_limit_refusals_total{limit="rate"}`:                   0,
		`polysocket_sessions_ended_total{reason="target_lost"}`:           0,
		`polysocket_sessions_ended_total{reason="write_fail"}`:            0,
		`polysocket_sessions_ended_total{reason="ping"}`:                  0,
		`polysocket_sessions_ended_total{reason="too_large"}`:             0,
		`polysocket_establish_seconds_bucket{result="ok",le="+Inf"}`:      2,
		`polysocket_establish_seconds_bucket{result="dial",le="+Inf"}`:    1,
		`polysocket_create_seconds_count{code="token"}`:                   1,
		`polysocket_create_seconds_count{code="dial"}`:                    1,
		`polysocket_sessions_ended_total{reason="unknown"}`:               0,
	}
	for name, v := range want {
		if got, ok := m[name]; !ok && v != 0 {
			t.Errorf("%s missing", name)
		} else if got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	if m["go_goroutines"] == 0 || m["process_open_fds"] == 0 {
		t.Errorf("runtime and process collectors missing")
	}
}

// sent returns a check that a send was accepted (201).
func sent(t *testing.T) func(int, error) {
	return func(st int, err error) {
		t.Helper()
		if err != nil || st != http.StatusCreated {
			t.Fatalf("send: status %d, %v", st, err)
		}
	}
}
