package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/faultproxy"
	"github.com/polysocket/polysocket/internal/soaktarget"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/relay"
)

// Sizes of the soak: short by default, for ./scripts/test.sh; SOAK_LONG=1
// is the long run; SOAK_SESSIONS, SOAK_MESSAGES (each way) and SOAK_SEED
// set any of them.
const (
	shortSessions, shortMessages = 50, 300
	longSessions, longMessages   = 100, 1000
	soakDeadline                 = 20 * time.Minute // the whole run, however long
)

// params are a soak's sizes and seed.
type params struct {
	sessions, messages int
	seed               uint64
}

// readParams reads the sizes and seed from the environment; the seed is
// random unless given, and logged so that a failing run can be replayed.
func readParams(t testing.TB, sessions, messages int) params {
	t.Helper()
	p := params{sessions: sessions, messages: messages, seed: rand.Uint64()}
	if os.Getenv("SOAK_LONG") != "" {
		p.sessions, p.messages = longSessions, longMessages
	}
	for name, v := range map[string]*int{"SOAK_SESSIONS": &p.sessions, "SOAK_MESSAGES": &p.messages} {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive number", name, s)
			}
			*v = n
		}
	}
	if s := os.Getenv("SOAK_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", s, err)
		}
		p.seed = seed
	}
	t.Logf("soak: %d sessions × %d messages each way; replay with SOAK_SEED=%d", p.sessions, p.messages, p.seed)
	return p
}

// newProxy starts a fault proxy to upstream on l (nil: a new loopback
// listener), closed at cleanup.
func newProxy(t testing.TB, l net.Listener, upstream string, plan func(*rand.Rand) faultproxy.Faults, seed uint64) *faultproxy.Proxy {
	t.Helper()
	if l == nil {
		l = listen(t)
	}
	p := faultproxy.New(l, faultproxy.Config{Upstream: upstream, Plan: plan, Seed: seed})
	t.Cleanup(func() { p.Close() })
	return p
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestSoak runs the soak through fault proxies on both hops against a
// router and relay in this process.
func TestSoak(t *testing.T) {
	p := readParams(t, shortSessions, shortMessages)
	ip := startInProc(t, p, 0)
	clients, st, wall := ip.run(t, p, nil)
	awaitTargetCloses(t, ip.target, clients)
	for _, c := range clients {
		checkComplete(t, st, c, ip.target.Side(c.id), wantClose(c))
	}
	report(t, st, wall, ip.proxies())
}

// TestTargetHopReset resets every relay-to-target connection mid-soak:
// each session ends with the relay's close message 1006 after a gapless
// prefix of the messages, never with a hang or the client giving up.
func TestTargetHopReset(t *testing.T) {
	p := readParams(t, 10, 400)
	ip := startInProc(t, p, 10*time.Millisecond)
	clients, st, wall := ip.run(t, p, ip.tproxy.ResetAll)
	for _, c := range clients {
		if c.closeCode != 1006 || c.lostHere {
			st.violation("session %d: close %d %q (the client's own: %v), want the relay's 1006", c.id, c.closeCode, c.closeReason, c.lostHere)
		}
		checkPrefix(st, c, ip.target.Side(c.id))
	}
	report(t, st, wall, ip.proxies())
}

// inProc is a router and relay in this process (testenv.Stack), the
// soak target, and a fault proxy on each hop.
type inProc struct {
	stack          *testenv.Stack
	target         *soaktarget.Target
	cproxy, tproxy *faultproxy.Proxy
}

// startInProc starts an inProc whose target pushes every pushEvery.
func startInProc(t *testing.T, p params, pushEvery time.Duration) *inProc {
	t.Helper()
	ip := &inProc{target: soaktarget.New(t, p.messages, pushEvery)}
	ip.tproxy = newProxy(t, nil, ip.target.Addr(), faultproxy.TargetHop, p.seed^0x7a)
	// Sessions live at {uniq}.localhost:PORT of the client proxy, which
	// must listen before the relay learns its fqdn.
	cl := listen(t)
	ip.stack = testenv.NewStack(t, testenv.StackOptions{
		Relay: relay.Config{FQDN: "localhost:" + port(cl.Addr().String())},
	})
	ip.cproxy = newProxy(t, cl, ip.stack.Listener.Addr().String(), faultproxy.ClientHop, p.seed)
	return ip
}

// run opens the sessions and runs them to their end (mid, if set, runs
// a second in).
func (ip *inProc) run(t *testing.T, p params, mid func()) ([]*client, *stats, time.Duration) {
	t.Helper()
	st := &stats{}
	hc := newHTTP()
	defer hc.CloseIdleConnections()
	begin := time.Now()
	clients := openAll(t, hc, ip.stack.URL, "", p, ip.target, ip.tproxy.Addr(), st)
	runAll(t, clients, mid)
	return clients, st, time.Since(begin)
}

func (ip *inProc) proxies() map[string]*faultproxy.Proxy {
	return map[string]*faultproxy.Proxy{"client hop": ip.cproxy, "target hop": ip.tproxy}
}

// openAll creates the sessions through the router at base, a few at a
// time; even ones end by the client's close, odd ones by the target's.
func openAll(t testing.TB, hc *http.Client, base, token string, p params, target *soaktarget.Target, taddr string, st *stats) []*client {
	t.Helper()
	clients := make([]*client, p.sessions)
	errs := make([]error, p.sessions)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range clients {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			mode := soaktarget.ModeClient
			if i%2 == 1 {
				mode = soaktarget.ModeTarget
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tc := &testenv.Client{Base: base, HTTP: hc, Token: token}
			r, status, err := tc.Create(ctx, target.URL(taddr, i, mode), url.Values{"from": {"soak"}})
			if err != nil || !r.OK {
				errs[i] = fmt.Errorf("create: status %d, %+v: %v", status, r, err)
				return
			}
			// A transport per session, as each page has its own: one
			// shared by all is a lock every request of the run contends
			// for, which under -race and load held requests for seconds.
			clients[i] = newClient(i, mode, p.messages, r.FQDN, r.Socket, newHTTP(), st, p.seed)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	return clients
}

// runAll runs every client to its end, bounded by soakDeadline; mid,
// if set, runs a second in, while they run.
func runAll(t testing.TB, clients []*client, mid func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), soakDeadline)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(ctx) })
	}
	if mid != nil {
		time.Sleep(time.Second)
		mid()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Errorf("the soak did not end within %v", soakDeadline)
	}
}

// awaitTargetCloses waits (bounded) until the target has read the close
// frame of every session the client closed: the client may see its
// close message before the target's read loop records the frame.
func awaitTargetCloses(t testing.TB, target *soaktarget.Target, clients []*client) {
	t.Helper()
	end := time.Now().Add(15 * time.Second)
	for _, c := range clients {
		for c.mode == soaktarget.ModeClient && c.closeCode == soaktarget.CloseByClient && target.Side(c.id).CloseCode == 0 && time.Now().Before(end) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// checkComplete checks a session that ran to its end: every message
// arrived once, in order, both ways, and it ended with close want.
func checkComplete(t testing.TB, st *stats, c *client, side soaktarget.Side, want int) {
	t.Helper()
	if c.echoes != c.msgs || c.pushes != c.msgs {
		st.violation("session %d: client got %d echoes and %d pushes of %d", c.id, c.echoes, c.pushes, c.msgs)
	}
	if side.Got != c.msgs {
		st.violation("session %d: target got %d of %d messages, echoed %d, pushed %d", c.id, side.Got, c.msgs, side.Echoed, side.Pushed)
	}
	for _, b := range side.Bad {
		st.violation("%s", b)
	}
	if c.closeCode != want {
		st.violation("session %d: ended with close %d %q, want %d", c.id, c.closeCode, c.closeReason, want)
	}
	if c.mode == soaktarget.ModeClient && side.CloseCode != soaktarget.CloseByClient {
		st.violation("session %d: target saw close %d, want %d", c.id, side.CloseCode, soaktarget.CloseByClient)
	}
}

// report logs the figures of a soak and fails the test on any
// violation.
func report(t testing.TB, st *stats, wall time.Duration, proxies map[string]*faultproxy.Proxy) {
	t.Helper()
	var lines []string
	for name, p := range proxies {
		lines = append(lines, name+": "+formatCounts(p.Counts())+" over "+strconv.FormatUint(p.Conns(), 10)+" connections")
	}
	sort.Strings(lines)
	t.Logf("soak: %v wall; %d requests; retries: %d sends, %d polls, %d closes; faults: %s",
		wall.Round(time.Millisecond), st.requests.Load(), st.sendRetries.Load(), st.pollRetries.Load(),
		st.closeRetries.Load(), strings.Join(lines, "; "))
	broken := st.broken()
	for i, v := range broken {
		if i == 30 {
			t.Errorf("… and %d more", len(broken)-i)
			break
		}
		t.Error(v)
	}
	if len(broken) > 0 {
		t.Errorf("%d violations", len(broken))
		dumpStacks(t)
	}
}

func formatCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + " " + strconv.FormatInt(m[k], 10))
	}
	return b.String()
}

// dumpStacks writes every goroutine's stack to SOAK_STACKS, if set, for
// a failed run's post-mortem.
func dumpStacks(t testing.TB) {
	path := os.Getenv("SOAK_STACKS")
	if path == "" {
		return
	}
	buf := make([]byte, 64<<20)
	if err := os.WriteFile(path, buf[:runtime.Stack(buf, true)], 0o644); err != nil {
		t.Log(err)
	}
}
