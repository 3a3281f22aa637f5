package ops

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// createCode asks p for a session to target with the dev token and
// returns "ok" or the error word.
func createCode(t *testing.T, p *proctest.Proc, target string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := &testenv.Client{Base: p.URL(), HTTP: p.Client()}
	r, _, err := cl.Create(ctx, target, nil)
	if err != nil {
		t.Fatalf("create %s: %v", target, err)
	}
	if r.OK {
		return "ok"
	}
	t.Logf("create %s: %s: %s", target, r.Code, r.Error)
	return r.Code
}

// quickBoth is `both` without a create limit, stopping at once, and
// more flags.
func quickBoth(more ...string) []string {
	return append([]string{"both", "--create-rate", "0", "--drain-timeout", "100ms", "--close-grace", "100ms"}, more...)
}

// sum adds the series of a metric, whatever their labels.
func sum(m map[string]float64, name string) float64 {
	total := 0.0
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
		}
	}
	return total
}

// TestDevTokenOffLoopback checks the development token's reach: on a
// loopback listener (go run . both) any local WebSocket server; on a
// listener that is not loopback (the Docker image's :8080) only the
// built-in echo, unless --dev-any-loopback, which the log announces.
func TestDevTokenOffLoopback(t *testing.T) {
	local := testenv.NewTarget(t, testenv.TargetOptions{}) // a local service on 127.0.0.1

	laptop := startProc(t, proctest.Options{}, quickBoth()...)
	if code := createCode(t, laptop, local.URL); code != "ok" {
		t.Fatalf("loopback listener: a local target got %q, want ok", code)
	}

	port := proctest.FreeAddr(t)[len("127.0.0.1:"):]
	open := startProc(t, proctest.Options{Addr: "0.0.0.0:" + port}, quickBoth()...)
	conns := local.Conns()
	for _, target := range []string{local.URL, "ws://localhost:" + port + "/create", "ws://127.0.0.1:" + port + "/j/x"} {
		if code := createCode(t, open, target); code != "target" {
			t.Errorf("non-loopback listener: %s got %q, want target", target, code)
		}
	}
	if local.Conns() != conns {
		t.Error("the local target was dialed through a non-loopback listener")
	}
	for _, target := range []string{"ws://localhost:" + port + "/echo", "ws://127.0.0.1:" + port + "/echo?x=1"} {
		if code := createCode(t, open, target); code != "ok" {
			t.Errorf("non-loopback listener: the built-in echo %s got %q, want ok", target, code)
		}
	}
	if !strings.Contains(open.LogTail(100), "reaches only the built-in echo") {
		t.Error("the log does not say the dev token is limited to the echo")
	}

	port2 := proctest.FreeAddr(t)[len("127.0.0.1:"):]
	anyLo := startProc(t, proctest.Options{Addr: "0.0.0.0:" + port2}, quickBoth("--dev-any-loopback")...)
	if code := createCode(t, anyLo, local.URL); code != "ok" {
		t.Errorf("--dev-any-loopback: a local target got %q, want ok", code)
	}
	if !strings.Contains(anyLo.LogTail(100), "--dev-any-loopback: the dev token lets any page") {
		t.Error("the log does not announce --dev-any-loopback")
	}
}

// TestRelayNeverDialsItself asks `both` (dev token, built-in echo) for
// targets that name the relay itself: its /create (nested, which on
// main turned one create into several), its session paths on a session
// host, and its admin listener. Each is refused and no second create or
// session happens; the built-in echo still works.
func TestRelayNeverDialsItself(t *testing.T) {
	p := startProc(t, proctest.Options{}, quickBoth()...)
	port := p.Addr()[strings.LastIndexByte(p.Addr(), ':')+1:]
	admin := strings.TrimPrefix(p.AdminURL(), "http://")
	nested := func(host string) string {
		inner := "ws://" + host + "/create?" + url.Values{"from": {"x"}, "token": {"dev"}, "target": {"ws://localhost:" + port + "/echo"}}.Encode()
		return inner
	}
	targets := []string{
		nested("localhost:" + port),
		nested("127.0.0.1:" + port),
		"ws://localhost:" + port + "/j/nosuchsocket",
		"ws://" + admin + "/metrics",
	}
	for _, target := range targets {
		if code := createCode(t, p, target); code == "ok" {
			t.Errorf("%s: ok, want a refusal", target)
		}
	}
	m := scrape(t, p)
	if n := sum(m, "polysocket_creates_total"); n != float64(len(targets)) {
		t.Errorf("%v creates counted for %d requests: the relay dialed its own /create", n, len(targets))
	}
	if n := sum(m, "polysocket_sessions_created_total"); n != 0 {
		t.Errorf("%v sessions created, want 0", n)
	}
	if code := createCode(t, p, "ws://localhost:"+port+"/echo"); code != "ok" {
		t.Fatalf("the built-in echo: %q, want ok", code)
	}
}
