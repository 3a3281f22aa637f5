package process_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/membus"
	"github.com/polysocket/polysocket/metrics"
	"github.com/polysocket/polysocket/process"
	"github.com/polysocket/polysocket/relay"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a relay process on loopback, running until stopped.
type env struct {
	base   string // http://addr
	relay  *relay.Relay
	cancel context.CancelFunc
	done   chan error
}

// start runs a relay process on bus (nil: a fresh membus) with drain
// as its drain timeout and admin as its admin listener (may be nil).
func start(t *testing.T, drain time.Duration, admin net.Listener, bus relay.Bus) *env {
	t.Helper()
	if bus == nil {
		bus = membus.New(0)
	}
	log := zaptest.NewLogger(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := relay.New(relay.Config{FQDN: ln.Addr().String(), ParkPolls: true}, bus, log)
	if err != nil {
		t.Fatal(err)
	}
	p, err := process.New(process.Config{
		Listener: ln, HTTP: &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 5 * time.Second},
		Relay: rl, Metrics: metrics.New(), DrainTimeout: drain, CloseGrace: 5 * time.Second,
		ShutdownTimeout: 5 * time.Second, Admin: admin, AdminMetrics: true, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{base: "http://" + ln.Addr().String(), relay: rl, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
	})
	return e
}

func get(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type pollAnswer struct {
	Messages []struct {
		Type   string `json:"type"`
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"messages"`
}

// The drain's order: /readyz turns 503 while live sessions go on; at
// the drain timeout they end with 1001; once the client has collected
// its close message HTTP stops and Run returns.
func TestDrainOrder(t *testing.T) {
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	e := start(t, time.Second, nil, nil)
	testenv.WaitFor(t, 5*time.Second, "readiness", func() bool { code, _ := get(t, e.base+"/readyz", ""); return code == http.StatusOK })
	rep := e.relay.Establish(control.EstablishRequest{ID: "1", Target: tg.URL, Token: "t"})
	if !rep.OK {
		t.Fatalf("establish: %+v", rep)
	}
	poll := func() pollAnswer {
		code, body := get(t, e.base+"/j/"+rep.Socket+"?ttl=0", rep.FQDN)
		var a pollAnswer
		if code != http.StatusOK || json.Unmarshal([]byte(body), &a) != nil {
			t.Fatalf("poll: %d %s", code, body)
		}
		return a
	}
	e.cancel()
	testenv.WaitFor(t, 5*time.Second, "/readyz to say draining", func() bool {
		code, _ := get(t, e.base+"/readyz", "")
		return code == http.StatusServiceUnavailable
	})
	if a := poll(); len(a.Messages) != 1 || a.Messages[0].Type != "heartbeat" {
		t.Fatalf("during the drain the session ended early: %+v", a)
	}
	var closed pollAnswer
	testenv.WaitFor(t, 10*time.Second, "the close message", func() bool {
		closed = poll()
		return len(closed.Messages) > 0 && closed.Messages[0].Type == "close"
	})
	if m := closed.Messages[0]; m.Code != 1001 || m.Reason != "relay shutting down" {
		t.Fatalf("close message %+v", m)
	}
	select {
	case err := <-e.done:
		e.done <- err // for cleanup
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return once the close message was collected")
	}
}

// The admin listener serves metrics and profiles; the public one does
// not, and Run closes both.
func TestListeners(t *testing.T) {
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminURL := "http://" + admin.Addr().String()
	e := start(t, 0, admin, nil)
	testenv.WaitFor(t, 5*time.Second, "health", func() bool { code, _ := get(t, e.base+"/healthz", ""); return code == http.StatusOK })
	for _, path := range []string{"/debug/pprof/", "/metrics"} {
		if code, _ := get(t, adminURL+path, ""); code != http.StatusOK {
			t.Errorf("admin listener %s: %d", path, code)
		}
		if code, _ := get(t, e.base+path, ""); code != http.StatusNotFound {
			t.Errorf("public listener serves %s: %d", path, code)
		}
	}
	e.cancel()
	if err := <-e.done; err != nil {
		t.Fatal(err)
	}
	e.done <- nil // for cleanup
	for _, addr := range []string{admin.Addr().String(), strings.TrimPrefix(e.base, "http://")} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listening after Run", addr)
		}
	}
}

// SignalContext ends at SIGTERM, and the process goes on.
func TestSignalContext(t *testing.T) {
	ctx, stop := process.SignalContext(context.Background())
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the context")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal(ctx.Err())
	}
}

// gatedBus is a bus that refuses registrations until open is closed.
type gatedBus struct {
	*membus.Bus
	open chan struct{}
}

func (b gatedBus) Register(ctx context.Context, info control.RelayInfo) error {
	select {
	case <-b.open:
		return b.Bus.Register(ctx, info)
	default:
		return errors.New("bus not open yet")
	}
}

// A relay's /readyz is 503 until the relay has registered on the bus
// for the first time (a create sent before would find no relay), and
// 200 after; /healthz is 200 all along.
func TestReadyAfterRegistration(t *testing.T) {
	bus := gatedBus{Bus: membus.New(0), open: make(chan struct{})}
	e := start(t, 0, nil, bus)
	testenv.WaitFor(t, 5*time.Second, "health", func() bool { code, _ := get(t, e.base+"/healthz", ""); return code == http.StatusOK })
	if code, body := get(t, e.base+"/readyz", ""); code != http.StatusServiceUnavailable || body != "not registered\n" {
		t.Fatalf("/readyz before the first registration: %d %q, want 503 not registered", code, body)
	}
	close(bus.open)
	testenv.WaitFor(t, 10*time.Second, "/readyz 200 after the registration", func() bool {
		code, _ := get(t, e.base+"/readyz", "")
		return code == http.StatusOK
	})
}
