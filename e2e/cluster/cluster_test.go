package cluster

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/redisbus"
)

// Sizes and bounds of the test clusters.
const (
	relayCapacity = 1000
	createTimeout = 20 * time.Second // one /create, target dial included
	echoTimeout   = 10 * time.Second // one message there and back
	registerWait  = 10 * time.Second // relays to show up on the bus
)

// cluster is a set of router and relay processes on one Redis, with an
// echo target and an HTTP client for the tests.
type cluster struct {
	t        testing.TB
	redisURL string
	routers  []*proctest.Proc
	relays   []*relayProc
	target   *testenv.Target
	http     *http.Client
	bus      *redisbus.Bus // the test's own view of Redis
}

// relayProc is a relay process and its name on the bus.
type relayProc struct {
	*proctest.Proc
	id string
}

// base is the relay's URL as the test reaches it.
func (r *relayProc) base() string { return r.URL() }

// startCluster starts routers and relays on redisURL, and waits until
// every relay is registered.
func startCluster(t testing.TB, redisURL string, routers, relays int) *cluster {
	t.Helper()
	c := &cluster{
		t:        t,
		redisURL: redisURL,
		target:   testenv.NewTarget(t, testenv.TargetOptions{}),
		http: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		},
	}
	// The idle keep-alive connections end before goleak looks.
	t.Cleanup(c.http.CloseIdleConnections)
	bus, err := redisbus.New(redisbus.Config{URL: redisURL}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	c.bus = bus
	for i := range relays {
		c.relays = append(c.relays, c.startRelay(t, "relay-"+strconv.Itoa(i), proctest.FreeAddr(t)))
	}
	for i := range routers {
		addr := proctest.FreeAddr(t)
		c.routers = append(c.routers, proctest.Start(t, proctest.Options{
			Name: "router-" + strconv.Itoa(i), Addr: addr,
			Args: []string{"router", "--redis", redisURL,
				// Every test create comes from 127.0.0.1, far beyond the
				// per-address rate meant for browsers.
				"--create-rate", "0"},
		}))
	}
	// Runs before each process's own cleanup: all stop at once, which
	// saves the relays' drain time over a sequence. The client's idle
	// connections go first: a server's Shutdown waits for a connection
	// that never sent a request up to 5s before it counts as idle.
	t.Cleanup(func() {
		c.http.CloseIdleConnections()
		procs := append([]*proctest.Proc(nil), c.routers...)
		for _, r := range c.relays {
			procs = append(procs, r.Proc)
		}
		parallel(len(procs), len(procs), func(i int) { procs[i].Stop() })
	})
	waitFor(t, registerWait, fmt.Sprintf("%d relays to register", relays), func() bool {
		return len(c.liveRelays()) == relays
	})
	return c
}

// startRelay starts a relay process called id serving on addr, which is
// also its fqdn.
func (c *cluster) startRelay(t testing.TB, id, addr string) *relayProc {
	t.Helper()
	p := proctest.Start(t, proctest.Options{Name: id, Addr: addr, Args: []string{"relay",
		"--redis", c.redisURL, "--fqdn", addr, "--id", id,
		"--capacity", strconv.Itoa(relayCapacity), "--allow-private",
		// Sessions outlive a SIGTERM by this much; the tests end with
		// live sessions.
		"--drain-timeout", "1s"}})
	return &relayProc{Proc: p, id: id}
}

// liveRelays are the ids of the relays registered on the bus; nil when
// Redis does not answer.
func (c *cluster) liveRelays() map[string]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	infos, err := c.bus.Relays(ctx)
	if err != nil {
		return nil
	}
	ids := make(map[string]bool, len(infos))
	for _, r := range infos {
		ids[r.ID] = true
	}
	return ids
}

// client is a protocol client of router i for token tok.
func (c *cluster) client(i int, tok string) *testenv.Client {
	return &testenv.Client{Base: c.routers[i].URL(), HTTP: c.http, Token: tok}
}

// create asks router i for a session to the echo target.
func (c *cluster) create(i int, tok string) (testenv.CreateReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	r, st, err := c.client(i, tok).Create(ctx, c.target.URL, nil)
	if err != nil {
		return r, fmt.Errorf("create through router %d: status %d: %w", i, st, err)
	}
	return r, nil
}

// session is a live session and the relay base it lives on.
type session struct {
	*testenv.Session
	relay string // base URL, e.g. http://127.0.0.1:1234
}

// open turns a successful create reply into a session. The reply's fqdn
// is {uniq}.127.0.0.1:PORT, which does not resolve; the relay is reached
// at 127.0.0.1:PORT, the fqdn without its first label.
func (c *cluster) open(r testenv.CreateReply, tok string) (*session, error) {
	if !r.OK {
		return nil, fmt.Errorf("create failed: %+v", r)
	}
	_, host, ok := strings.Cut(r.FQDN, ".")
	if !ok {
		return nil, fmt.Errorf("fqdn %q has no {uniq}. label", r.FQDN)
	}
	base := "http://" + host
	cl := &testenv.Client{Base: base, Relay: base, HTTP: c.http, Token: tok}
	return &session{Session: &testenv.Session{C: cl, Host: r.FQDN, Socket: r.Socket, Proto: r.Protocol}, relay: base}, nil
}

// createSessions opens n sessions for tok through the routers in turn
// (session i through router i mod len(routers)), a few at a time.
func (c *cluster) createSessions(t testing.TB, n int, tok string) []*session {
	t.Helper()
	out := make([]*session, n)
	errs := make([]error, n)
	parallel(n, 8, func(i int) {
		r, err := c.create(i%len(c.routers), tok)
		if err == nil {
			out[i], err = c.open(r, tok)
		}
		errs[i] = err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	return out
}

// echoAll sends one message on every session and waits for its echo.
func echoAll(t testing.TB, sessions []*session, label string) {
	t.Helper()
	errs := make([]error, len(sessions))
	parallel(len(sessions), 16, func(i int) {
		errs[i] = echo(sessions[i], fmt.Sprintf("%s-%d", label, i))
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("session %d on %s: %v", i, sessions[i].relay, err)
		}
	}
}

// echo sends text and polls until the target's echo of it comes back.
// Any other data message first is an error: messages are echoed one at a
// time, so a lost or reordered one shows up here.
func echo(s *session, text string) error {
	ctx, cancel := context.WithTimeout(context.Background(), echoTimeout)
	defer cancel()
	st, err := s.SendText(ctx, text)
	if err != nil {
		return fmt.Errorf("send %q: %w", text, err)
	}
	if st != http.StatusCreated {
		return fmt.Errorf("send %q: status %d", text, st)
	}
	for ctx.Err() == nil { // each round is a poll bounded by ctx
		r, st, err := s.Poll(ctx, 2*time.Second)
		if err != nil || st != http.StatusOK {
			return fmt.Errorf("poll for %q: status %d, %+v: %v", text, st, r, err)
		}
		for _, m := range r.Messages {
			switch m.Type {
			case "text":
				if m.Data != text {
					return fmt.Errorf("got %q, want %q", m.Data, text)
				}
				return nil
			case "binary", "close":
				return fmt.Errorf("got %+v, want text %q", m, text)
			}
		}
	}
	return fmt.Errorf("no echo of %q: %w", text, ctx.Err())
}

// byRelay counts sessions per relay base URL.
func byRelay(sessions []*session) map[string]int {
	m := make(map[string]int)
	for _, s := range sessions {
		m[s.relay]++
	}
	return m
}

// checkSpread fails the test unless every relay holds within ±20% of an
// even share of the sessions.
func (c *cluster) checkSpread(t testing.TB, sessions []*session) {
	t.Helper()
	counts := byRelay(sessions)
	t.Logf("%d sessions per relay: %v", len(sessions), counts)
	even := float64(len(sessions)) / float64(len(c.relays))
	for _, r := range c.relays {
		n := counts[r.base()]
		if float64(n) < 0.8*even || float64(n) > 1.2*even {
			t.Errorf("relay %s holds %d of %d sessions, want %.0f±20%%; spread: %v", r.id, n, len(sessions), even, counts)
		}
	}
	if len(counts) != len(c.relays) {
		t.Errorf("sessions on %d relay addresses, want %d: %v", len(counts), len(c.relays), counts)
	}
}

// checkLimit fires 100 concurrent creates for a token limited to 10
// through all routers and wants exactly 10 sessions and 90 limit errors.
func (c *cluster) checkLimit(t testing.TB, tok string) {
	t.Helper()
	const n, limit = 100, 10
	replies := make([]testenv.CreateReply, n)
	errs := make([]error, n)
	parallel(n, n, func(i int) {
		replies[i], errs[i] = c.create(i%len(c.routers), tok)
	})
	ok, limited := 0, 0
	for i, r := range replies {
		switch {
		case errs[i] != nil:
			t.Errorf("create %d: %v", i, errs[i])
		case r.OK:
			ok++
		case r.Code == "limit":
			limited++
		default:
			t.Errorf("create %d: unexpected answer %+v", i, r)
		}
	}
	if ok != limit || limited != n-limit {
		t.Fatalf("%d ok and %d limit errors, want %d and %d", ok, limited, limit, n-limit)
	}
	if got, err := tokenConnections(t, c.redisURL, tok); err != nil || got != limit {
		t.Fatalf("token show %s: %d connections, %v; want %d", tok, got, err, limit)
	}
}

// parallel runs f(0..n-1) on at most workers goroutines and waits for
// them all.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
