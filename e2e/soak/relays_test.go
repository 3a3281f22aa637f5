package soak

import (
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/faultproxy"
	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/redistest"
	"github.com/polysocket/polysocket/internal/soaktarget"
)

// Sizes of the relay death and drain soaks: the target pushes every
// pushPace, so the sessions are still running when the relay goes.
const (
	procSessions = 24
	procMessages = 400
	pushPace     = 10 * time.Millisecond
	drainTimeout = 2 * time.Second
	closeGrace   = 8 * time.Second // beyond a 2 s pause plus the client's backoff
	soakToken    = "soak"
)

// procRelay is a relay process behind its own client-hop fault proxy;
// its sessions live at {uniq}.localhost:{proxy port}.
type procRelay struct {
	*proctest.Proc
	proxy *faultproxy.Proxy
	port  string // the proxy's port, in every session's fqdn
}

// procCluster is a router and relays as separate processes on one
// Redis, the soak target behind a target-hop fault proxy.
type procCluster struct {
	router *proctest.Proc
	relays []*procRelay
	target *soaktarget.Target
	tproxy *faultproxy.Proxy
}

func startProcCluster(t *testing.T, relays int, p params) *procCluster {
	t.Helper()
	rs := redistest.Start(t)
	addToken(t, rs.URL())
	pc := &procCluster{target: soaktarget.New(t, p.messages, pushPace)}
	pc.tproxy = newProxy(t, nil, pc.target.Addr(), faultproxy.TargetHop, p.seed^0x7a)
	for i := range relays {
		cl := listen(t)
		addr := proctest.FreeAddr(t)
		proc := proctest.Start(t, proctest.Options{Name: "relay-" + strconv.Itoa(i), Addr: addr, Args: []string{"relay",
			"--redis", rs.URL(), "--id", "relay-" + strconv.Itoa(i), "--allow-private",
			"--fqdn", "localhost:" + port(cl.Addr().String()),
			"--drain-timeout", drainTimeout.String(), "--close-grace", closeGrace.String()}})
		pc.relays = append(pc.relays, &procRelay{Proc: proc, port: port(cl.Addr().String()),
			proxy: newProxy(t, cl, addr, faultproxy.ClientHop, p.seed+uint64(i))})
	}
	pc.router = proctest.Start(t, proctest.Options{Name: "router", Args: []string{"router",
		"--redis", rs.URL(), "--create-rate", "0"}})
	return pc
}

// addToken adds the soak's token with the real `token add` command.
func addToken(t testing.TB, redisURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, proctest.Build(t), "token", "add", soakToken,
		"--target", "ws://127.0.0.1:*", "--origin", "*", "--redis", redisURL)
	cmd.Env = proctest.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("token add: %v\n%s", err, out)
	}
}

// relayOf is the relay a session lives on, by its fqdn's port.
func (pc *procCluster) relayOf(c *client) *procRelay {
	for _, r := range pc.relays {
		if strings.HasSuffix(c.base, ":"+r.port) {
			return r
		}
	}
	return nil
}

// open opens the sessions through the router, and checks that every
// relay has some.
func (pc *procCluster) open(t *testing.T, p params, st *stats, hc *http.Client) []*client {
	t.Helper()
	clients := openAll(t, hc, pc.router.URL(), soakToken, p, pc.target, pc.tproxy.Addr(), st)
	for _, r := range pc.relays {
		if n := pc.count(clients, r); n == 0 {
			t.Fatalf("no session on %s", r.Name())
		}
	}
	return clients
}

func (pc *procCluster) count(clients []*client, r *procRelay) int {
	n := 0
	for _, c := range clients {
		if pc.relayOf(c) == r {
			n++
		}
	}
	return n
}

// midSoak runs a soak on two relays and calls stop on relay 0 a second
// in, with the sessions still running; it returns once all ended.
func midSoak(t *testing.T, stop func(pc *procCluster, clients []*client)) (*procCluster, []*client, *stats) {
	t.Helper()
	p := readParams(t, procSessions, procMessages)
	pc := startProcCluster(t, 2, p)
	st := &stats{}
	hc := newHTTP()
	defer hc.CloseIdleConnections()
	begin := time.Now()
	clients := pc.open(t, p, st, hc)
	runAll(t, clients, func() { stop(pc, clients) })
	t.Logf("soak over after %v", time.Since(begin).Round(time.Millisecond))
	return pc, clients, st
}

// TestRelayKilled kills one of two relays mid-soak: each of its
// sessions ends with 1006 within the client's bound (a poll's hold plus
// its give-up time), and the other relay's sessions run to their end
// untouched.
func TestRelayKilled(t *testing.T) {
	var killed time.Time
	pc, clients, st := midSoak(t, func(pc *procCluster, _ []*client) {
		pc.relays[0].Kill9()
		killed = time.Now()
	})
	victim := pc.relays[0]
	bound := pollTTL + reqTimeout + giveUp + backoffMax
	var slowest time.Duration
	for _, c := range clients {
		if pc.relayOf(c) != victim {
			checkComplete(t, st, c, pc.target.Side(c.id), wantClose(c))
			continue
		}
		took := c.closedAt.Sub(killed)
		slowest = max(slowest, took)
		if c.closeCode != 1006 || took > bound {
			st.violation("session %d on the killed relay: close %d %q %v after the kill, want 1006 within %v",
				c.id, c.closeCode, c.closeReason, took, bound)
		}
		checkPrefix(st, c, pc.target.Side(c.id))
	}
	t.Logf("%d sessions on the killed relay, the last closed 1006 %v after the kill", pc.count(clients, victim), slowest.Round(time.Millisecond))
	report(t, st, time.Since(killed), pc.proxies())
}

// TestRelayDrained sends SIGTERM to one of two relays mid-soak: each of
// its sessions gets close 1001 after every message the target sent
// before the signal; the other relay's sessions run to their end.
func TestRelayDrained(t *testing.T) {
	pushedBefore := map[int]int{}
	var drained time.Time
	pc, clients, st := midSoak(t, func(pc *procCluster, clients []*client) {
		for _, c := range clients {
			pushedBefore[c.id] = pc.target.Side(c.id).Pushed
		}
		pc.relays[0].Signal(t, syscall.SIGTERM)
		drained = time.Now()
	})
	victim := pc.relays[0]
	for _, c := range clients {
		side := pc.target.Side(c.id)
		if pc.relayOf(c) != victim {
			checkComplete(t, st, c, side, wantClose(c))
			continue
		}
		if c.closeCode != 1001 {
			st.violation("session %d on the drained relay: close %d %q, want 1001", c.id, c.closeCode, c.closeReason)
		}
		if c.pushes < pushedBefore[c.id] {
			st.violation("session %d on the drained relay: %d pushes delivered, the target sent %d before the drain",
				c.id, c.pushes, pushedBefore[c.id])
		}
		checkPrefix(st, c, side)
	}
	t.Logf("%d sessions on the drained relay", pc.count(clients, victim))
	report(t, st, time.Since(drained), pc.proxies())
}

// proxies are the cluster's fault proxies by hop, for the report.
func (pc *procCluster) proxies() map[string]*faultproxy.Proxy {
	m := map[string]*faultproxy.Proxy{"target hop": pc.tproxy}
	for _, r := range pc.relays {
		m["client hop of "+r.Name()] = r.proxy
	}
	return m
}

// wantClose is the close a session that ran to its end must get.
func wantClose(c *client) int {
	if c.mode == soaktarget.ModeTarget {
		return soaktarget.CloseByTarget
	}
	return soaktarget.CloseByClient
}

// checkPrefix checks a session cut short: what each side got is a
// prefix of what the other sent (order and uniqueness are checked as
// the messages arrive).
func checkPrefix(st *stats, c *client, side soaktarget.Side) {
	if c.echoes > side.Got || c.pushes > side.Pushed {
		st.violation("session %d: client got %d echoes and %d pushes, target got %d and pushed %d",
			c.id, c.echoes, c.pushes, side.Got, side.Pushed)
	}
	for _, b := range side.Bad {
		st.violation("%s", b)
	}
}
