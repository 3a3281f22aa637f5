package cluster

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/redistest"
)

// Token names used by the tests.
const (
	appToken     = "app" // no limit
	limitedToken = "ten" // limit 10
)

// startSingle is 1 Redis, 2 routers and 3 relays, with the app token.
func startSingle(t *testing.T, opts ...redistest.Option) (*redistest.Server, *cluster) {
	t.Helper()
	rs := redistest.Start(t, opts...)
	c := startCluster(t, rs.URL(), 2, 3)
	addToken(t, rs.URL(), appToken, 0)
	return rs, c
}

func TestSpreadAndEcho(t *testing.T) {
	_, c := startSingle(t)
	sessions := c.createSessions(t, 300, appToken)
	c.checkSpread(t, sessions)
	echoAll(t, sessions, "hello")
}

func TestTokenLimit(t *testing.T) {
	rs, c := startSingle(t)
	addToken(t, rs.URL(), limitedToken, 10)
	c.checkLimit(t, limitedToken)
}

func TestRelayKilled(t *testing.T) {
	rs, c := startSingle(t)
	sessions := c.createSessions(t, 60, appToken)
	echoAll(t, sessions, "before")
	if n, err := tokenConnections(t, rs.URL(), appToken); err != nil || n != len(sessions) {
		t.Fatalf("token show: %d connections, %v; want %d", n, err, len(sessions))
	}

	victim := c.relays[0]
	var mine, others []*session
	for _, s := range sessions {
		if s.relay == victim.base() {
			mine = append(mine, s)
		} else {
			others = append(others, s)
		}
	}
	if len(mine) == 0 {
		t.Fatalf("no session on %s: %v", victim.id, byRelay(sessions))
	}
	victim.Kill9()

	// Its sessions' requests fail: nothing listens there any more.
	for _, s := range mine {
		err := echo(s, "after")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("session on the killed relay: %v, want connection refused", err)
		}
	}
	waitFor(t, 10*time.Second, victim.id+"'s registration to expire", func() bool {
		live := c.liveRelays()
		return live != nil && !live[victim.id]
	})
	expired := time.Now()
	want := len(sessions) - len(mine)
	waitFor(t, 5*time.Second, fmt.Sprintf("the token count to drop to %d", want), func() bool {
		n, err := tokenConnections(t, rs.URL(), appToken)
		return err == nil && n == want
	})
	t.Logf("%d sessions died with %s; the count dropped %v after its registration expired",
		len(mine), victim.id, time.Since(expired).Round(10*time.Millisecond))

	// New sessions go to the live relays only.
	fresh := c.createSessions(t, 30, appToken)
	if n := byRelay(fresh)[victim.base()]; n > 0 {
		t.Fatalf("%d new sessions on the killed relay", n)
	}
	echoAll(t, append(others, fresh...), "survivors")
}

// TestRelayRestartedSameID restarts a killed relay at once under the same
// --id, as a supervisor would: the new process must not inherit the dead
// one's connection counts.
func TestRelayRestartedSameID(t *testing.T) {
	rs, c := startSingle(t)
	sessions := c.createSessions(t, 30, appToken)
	victim := c.relays[0]
	lost := byRelay(sessions)[victim.base()]
	if lost == 0 {
		t.Fatalf("no session on %s: %v", victim.id, byRelay(sessions))
	}
	victim.Kill9()
	reborn := c.startRelay(t, victim.id, victim.Addr())
	want := len(sessions) - lost
	waitFor(t, 10*time.Second, fmt.Sprintf("the token count to drop to %d", want), func() bool {
		n, err := tokenConnections(t, rs.URL(), appToken)
		return err == nil && n == want
	})
	// The new process takes sessions again.
	waitFor(t, 10*time.Second, "a session on the restarted relay", func() bool {
		s := c.createSessions(t, 1, appToken)[0]
		return s.relay == reborn.base() && echo(s, "reborn") == nil
	})
}

func TestRedisOutage(t *testing.T) {
	// Redis comes back with its data, as a production Redis with
	// persistence does; redistest restarts it on the same port and
	// directory.
	rs, c := startSingle(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
	sessions := c.createSessions(t, 12, appToken)
	echoAll(t, sessions, "before")

	rs.Stop()
	down := time.Now()

	// Every session echoes numbered messages, one at a time, all through
	// the outage.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	echoed := make([]int, len(sessions))
	errs := make([]error, len(sessions))
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := echo(s, fmt.Sprintf("s%d-m%d", i, n)); err != nil {
					errs[i] = err
					return
				}
				echoed[i] = n
			}
		}()
	}
	stopEchoes := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopEchoes()

	// Creates fail fast with "unavailable" while Redis is down. The bound
	// is a guard against hangs, not a performance check.
	const hangGuard = 5 * time.Second
	tries, slowest := 0, time.Duration(0)
	for i := 0; time.Since(down) < 10*time.Second; i++ {
		start := time.Now()
		r, err := c.create(i%len(c.routers), appToken)
		took := time.Since(start)
		if err != nil || r.OK || r.Code != "unavailable" {
			t.Fatalf("create during the outage: %+v, %v; want code unavailable", r, err)
		}
		if took > hangGuard {
			t.Fatalf("create during the outage took %v", took)
		}
		tries++
		slowest = max(slowest, took)
		time.Sleep(250 * time.Millisecond) // pace the creates over the outage
	}
	t.Logf("%d creates during the outage, all unavailable, the slowest in %v", tries, slowest.Round(time.Millisecond))

	rs.Restart()
	up := time.Now()
	var fresh []*session
	i := 0
	waitFor(t, 15*time.Second, "a create to succeed after Redis returned", func() bool {
		i++
		r, err := c.create(i%len(c.routers), appToken)
		if err != nil || !r.OK {
			return false
		}
		s, err := c.open(r, appToken)
		if err != nil {
			return false
		}
		fresh = append(fresh, s)
		return true
	})
	t.Logf("creates succeed again %v after Redis returned", time.Since(up).Round(10*time.Millisecond))

	stopEchoes()
	for i, err := range errs {
		if err != nil {
			t.Errorf("session %d during the outage, after %d echoes: %v", i, echoed[i], err)
		} else if echoed[i] == 0 {
			t.Errorf("session %d echoed nothing during the outage", i)
		}
	}
	// Both routers serve again, and every session, old and new, works.
	fresh = append(fresh, c.createSessions(t, 6, appToken)...)
	echoAll(t, append(sessions, fresh...), "after")
	// The counts that expired during the outage come back from the
	// relays' own counts within a registration or two.
	live := len(sessions) + len(fresh)
	waitFor(t, 10*time.Second, "the token's count to match the live sessions", func() bool {
		n, err := tokenConnections(t, rs.URL(), appToken)
		return err == nil && n == live
	})
}

func TestRouterKilled(t *testing.T) {
	_, c := startSingle(t)
	c.routers[0].Kill9()
	if _, err := c.create(0, appToken); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("create through the killed router: %v, want connection refused", err)
	}
	sessions := make([]*session, 20)
	for i := range sessions {
		r, err := c.create(1, appToken)
		if err == nil {
			sessions[i], err = c.open(r, appToken)
		}
		if err != nil {
			t.Fatalf("create %d through the live router: %v", i, err)
		}
	}
	echoAll(t, sessions, "hello")
}
