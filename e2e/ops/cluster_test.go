package ops

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/redistest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// addToken stores a token allowing loopback targets with `token add`.
func addToken(t *testing.T, redisURL, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, proctest.Build(t), "token", "add", name, "--target", "ws://127.0.0.1:*",
		"--origin", "*", "--redis", redisURL).CombinedOutput()
	if err != nil {
		t.Fatalf("token add: %v\n%s", err, out)
	}
}

// heldTarget is an echo target that holds each handshake until release
// is closed, so a create can be kept in flight.
func heldTarget(t *testing.T) (url string, arrived <-chan struct{}, release func()) {
	t.Helper()
	arrivedc := make(chan struct{}, 16)
	releasec := make(chan struct{})
	var once sync.Once
	rel := func() { once.Do(func() { close(releasec) }) }
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		arrivedc <- struct{}{}
		select {
		case <-releasec:
		case <-r.Context().Done():
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		testenv.Echo(r.Context(), c)
	}))
	t.Cleanup(func() {
		rel()
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), arrivedc, rel
}

// TestClusterDrain runs two relays and a router over Redis. SIGTERM to
// one relay: the router stops picking it at once, while its live session
// goes on until the drain timeout and then gets 1001. SIGTERM to the
// router: a create in flight finishes, new connections are refused.
func TestClusterDrain(t *testing.T) {
	rs := redistest.Start(t)
	addToken(t, rs.URL(), "t")
	echo := testenv.NewTarget(t, testenv.TargetOptions{})
	held, arrived, release := heldTarget(t)

	startRelay := func(name string) *proctest.Proc {
		addr := proctest.FreeAddr(t)
		port := addr[strings.LastIndexByte(addr, ':')+1:]
		return startProc(t, proctest.Options{Addr: addr}, "relay", "--redis", rs.URL(), "--id", name,
			"--fqdn", name+".localhost:"+port, "--allow-cidr", "127.0.0.0/8",
			"--drain-timeout", "4s", "--close-grace", "1s")
	}
	relays := map[string]*proctest.Proc{"ra": startRelay("ra"), "rb": startRelay("rb")}
	router := startProc(t, proctest.Options{}, "router", "--redis", rs.URL(), "--create-rate", "0")
	cl := &testenv.Client{Base: router.URL(), HTTP: router.Client(), Token: "t"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// relayOf names the relay a create reply points at, and gives a
	// session handle that reaches it.
	open := func() (string, *testenv.Session) {
		t.Helper()
		r, st, err := cl.Create(ctx, echo.URL, nil)
		if err != nil || !r.OK {
			t.Fatalf("create: status %d, %+v, %v", st, r, err)
		}
		name := strings.SplitN(r.FQDN, ".", 3)[1]
		p := relays[name]
		if p == nil {
			t.Fatalf("create answered unknown relay fqdn %q", r.FQDN)
		}
		c := &testenv.Client{Base: cl.Base, Relay: p.URL(), HTTP: router.Client()}
		return name, &testenv.Session{C: c, Host: r.FQDN, Socket: r.Socket}
	}
	// Open sessions until one lives on ra (both relays start empty; the
	// router spreads sessions by free capacity).
	var onA *testenv.Session
	for i := 0; i < 20 && onA == nil; i++ {
		if name, s := open(); name == "ra" {
			onA = s
		} else {
			_, _ = s.Close(ctx, 1000, "")
		}
	}
	if onA == nil {
		t.Fatal("no session landed on relay ra")
	}

	relays["ra"].Signal(t, syscall.SIGTERM)
	testenv.WaitFor(t, 2*time.Second, "ra /readyz 503", func() bool {
		resp, err := relays["ra"].Client().Get(relays["ra"].URL() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	// At once, every new session goes to rb.
	for i := 0; i < 10; i++ {
		name, s := open()
		if name != "rb" {
			t.Fatalf("create %d after SIGTERM went to draining relay %s", i, name)
		}
		_, _ = s.Close(ctx, 1000, "")
	}
	// The live session on ra goes on during the drain…
	sent(t)(onA.SendText(ctx, "still here"))
	if got := onA.Collect(t, 1, 5*time.Second); len(got) != 1 || got[0].Data != "still here" {
		t.Fatalf("echo during drain: %+v", got)
	}
	// …and gets 1001 at the drain timeout; then ra exits.
	got := onA.Collect(t, 1, 15*time.Second)
	if len(got) != 1 || got[0].Type != "close" || got[0].Code != 1001 {
		t.Fatalf("after the drain timeout: %+v, want close 1001", got)
	}
	if err := relays["ra"].WaitExit(t, 15*time.Second); err != nil {
		t.Errorf("ra exit: %v", err)
	}

	// A create in flight when the router gets SIGTERM still finishes.
	type result struct {
		r   testenv.CreateReply
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, _, err := cl.Create(ctx, held, nil)
		done <- result{r, err}
	}()
	select {
	case <-arrived:
	case <-ctx.Done():
		t.Fatal("the held target never saw the handshake")
	}
	router.Signal(t, syscall.SIGTERM)
	testenv.WaitFor(t, 5*time.Second, "the router to stop taking connections", func() bool {
		c, err := net.DialTimeout("tcp", router.Addr(), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	release()
	res := <-done
	if res.err != nil || !res.r.OK {
		t.Fatalf("create in flight at SIGTERM: %+v, %v", res.r, res.err)
	}
	if err := router.WaitExit(t, 15*time.Second); err != nil {
		t.Errorf("router exit: %v", err)
	}
}
