package redisbus_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/internal/redistest"
	"github.com/polysocket/polysocket/redisbus"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/router"
	"github.com/polysocket/polysocket/token"
)

var (
	_ router.Bus        = (*redisbus.Bus)(nil)
	_ router.TokenStore = (*redisbus.Bus)(nil)
	_ relay.Bus         = (*redisbus.Bus)(nil)
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// rueidis' cluster client closes connections it dropped from its
		// slot map in an unowned goroutine that sleeps 5s first
		// (cluster.go, _refresh); Close does not stop it.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
	)
}

// testTTL is the registration TTL in tests: short, so expiry tests are
// quick, yet several times the 50ms beat the tests keep relays alive with.
const testTTL = 400 * time.Millisecond

// newBus connects to url and closes the bus when the test ends.
func newBus(t *testing.T, url string) *redisbus.Bus {
	t.Helper()
	b, err := redisbus.New(redisbus.Config{URL: url, RegistrationTTL: testTTL}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keepRegistered registers info every 50ms until the test ends.
func keepRegistered(t *testing.T, b *redisbus.Bus, info control.RelayInfo) {
	t.Helper()
	// The first commands to a just-started redis-server can pass the
	// bus' 1 s OpTimeout on a loaded machine: try again, within bounds.
	var err error
	for range 5 {
		if err = b.Register(context.Background(), info); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = b.Register(ctx, info)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// serve runs relay.Serve with handle until the test ends, and waits until
// the relay answers.
func serve(t *testing.T, relayBus, routerBus *redisbus.Bus, relayID string, handle control.EstablishFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relayBus.Serve(ctx, relayID, handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	waitFor(t, 5*time.Second, "relay subscribed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := routerBus.Establish(ctx, relayID, control.EstablishRequest{Target: "ws://ping"})
		return err == nil
	})
}

// echoHandler opens a pretend session named after the request.
func echoHandler(fqdn string) control.EstablishFunc {
	return func(req control.EstablishRequest) control.EstablishReply {
		return control.EstablishReply{OK: true, FQDN: "u." + fqdn, Socket: "s-" + req.ID, Protocol: req.Target}
	}
}

func TestConfig(t *testing.T) {
	log := zaptest.NewLogger(t)
	if _, err := redisbus.New(redisbus.Config{URL: "http://x", Prefix: "p"}, log); err == nil {
		t.Error("New accepted an http URL")
	}
	if _, err := redisbus.New(redisbus.Config{Prefix: "a{b}"}, log); err == nil {
		t.Error("New accepted a prefix with braces")
	}
	// Nothing listens on port 1: New fails fast with ErrBusDown.
	start := time.Now()
	_, err := redisbus.New(redisbus.Config{URL: "redis://127.0.0.1:1"}, log)
	if !errors.Is(err, control.ErrBusDown) {
		t.Errorf("New on a closed port: %v, want ErrBusDown", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("New on a closed port took %v", d)
	}
}

func TestRegistry(t *testing.T) {
	srv := redistest.Start(t)
	b := newBus(t, srv.URL())
	ctx := context.Background()

	if relays, err := b.Relays(ctx); err != nil || len(relays) != 0 {
		t.Fatalf("Relays on empty Redis = %v, %v", relays, err)
	}
	a := control.RelayInfo{ID: "a", FQDN: "a.example", Sessions: 1, Capacity: 10}
	keepRegistered(t, b, a)
	for _, id := range []string{"b", "c"} {
		if err := b.Register(ctx, control.RelayInfo{ID: id, FQDN: id + ".example", Capacity: 5}); err != nil {
			t.Fatal(err)
		}
	}
	relays, err := b.Relays(ctx)
	if err != nil || len(relays) != 3 || !reflect.DeepEqual(relays[0], a) || relays[1].ID != "b" {
		t.Fatalf("Relays = %+v, %v; want a, b, c", relays, err)
	}
	if err := b.Unregister(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	relays, _ = b.Relays(ctx)
	if len(relays) != 2 {
		t.Fatalf("after Unregister(c): %+v", relays)
	}
	// b stops registering and expires; a keeps beating.
	waitFor(t, 5*time.Second, "b to expire", func() bool {
		relays, err := b.Relays(ctx)
		return err == nil && len(relays) == 1 && relays[0].ID == "a"
	})
	if n, err := redistest.Do(srv.Addr(), "SCARD", "polysocket:relays"); err != nil || n != "1" {
		t.Errorf("relay index holds %s (%v), want the expired id pruned", n, err)
	}
	if err := b.Register(ctx, control.RelayInfo{}); err == nil {
		t.Error("Register accepted an empty ID")
	}
}

// TestRelaysCountPlaced checks that a session counted by Acquire shows in
// Relays at once, before the relay's next Register, and that Register
// takes it over.
func TestRelaysCountPlaced(t *testing.T) {
	srv := redistest.Start(t)
	routerBus, relayBus := newBus(t, srv.URL()), newBus(t, srv.URL())
	ctx := context.Background()
	info := control.RelayInfo{ID: "r1", FQDN: "r1.example", Sessions: 2, Capacity: 10}
	if err := relayBus.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ok, err := routerBus.Acquire(ctx, "tok", "r1", 0); err != nil || !ok {
			t.Fatalf("Acquire = %v, %v", ok, err)
		}
	}
	// A refused Acquire places nothing.
	if ok, err := routerBus.Acquire(ctx, "tok", "r1", 3); err != nil || ok {
		t.Fatalf("Acquire over the limit = %v, %v", ok, err)
	}
	relays, err := routerBus.Relays(ctx)
	if err != nil || len(relays) != 1 || relays[0].Sessions != 5 {
		t.Fatalf("Relays = %+v, %v; want r1 with 2+3 sessions", relays, err)
	}
	info.Sessions = 5 // the relay has them now
	if err := relayBus.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	relays, err = routerBus.Relays(ctx)
	if err != nil || len(relays) != 1 || relays[0].Sessions != 5 {
		t.Fatalf("Relays after Register = %+v, %v; want 5 sessions", relays, err)
	}
}

// TestAcquireNoRelay checks the router's limit probe: a count on no relay
// obeys the limit, is released, and expires when the release is lost.
func TestAcquireNoRelay(t *testing.T) {
	srv := redistest.Start(t)
	b := newBus(t, srv.URL())
	ctx := context.Background()
	if err := b.Register(ctx, control.RelayInfo{ID: "r1", FQDN: "r1.example", Capacity: 10}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Acquire(ctx, "tok", "r1", 1); err != nil || !ok {
		t.Fatalf("Acquire on r1 = %v, %v", ok, err)
	}
	if ok, err := b.Acquire(ctx, "tok", "", 1); err != nil || ok {
		t.Fatalf("probe at the limit = %v, %v; want false", ok, err)
	}
	if ok, err := b.Acquire(ctx, "other", "", 1); err != nil || !ok {
		t.Fatalf("probe under the limit = %v, %v; want true", ok, err)
	}
	if err := b.Release(ctx, "other", ""); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Count(ctx, "other"); err != nil || n != 0 {
		t.Fatalf("Count after the probe's release = %d, %v", n, err)
	}
	// A probe whose release is lost stops counting after the TTL.
	if ok, err := b.Acquire(ctx, "other", "", 1); err != nil || !ok {
		t.Fatalf("probe = %v, %v", ok, err)
	}
	waitFor(t, 5*time.Second, "the unreleased probe to expire", func() bool {
		n, err := b.Count(ctx, "other")
		return err == nil && n == 0
	})
	if _, err := b.Acquire(ctx, "", "r1", 0); err == nil {
		t.Error("Acquire accepted an empty token name")
	}
}

// TestRegisterClearsFormerCounts checks that a relay that starts again
// under the id of one that died does not inherit its counts.
func TestRegisterClearsFormerCounts(t *testing.T) {
	srv := redistest.Start(t)
	routerBus, dead := newBus(t, srv.URL()), newBus(t, srv.URL())
	ctx := context.Background()
	info := control.RelayInfo{ID: "r1", FQDN: "r1.example", Capacity: 10}
	if err := dead.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ok, err := routerBus.Acquire(ctx, "tok", "r1", 0); err != nil || !ok {
			t.Fatalf("Acquire = %v, %v", ok, err)
		}
	}
	// The same relay beating again keeps them.
	if err := dead.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	if n, err := routerBus.Count(ctx, "tok"); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v; want 3", n, err)
	}
	// A new process under the same id, before the old counts expire.
	reborn := newBus(t, srv.URL())
	if err := reborn.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	if n, err := routerBus.Count(ctx, "tok"); err != nil || n != 0 {
		t.Fatalf("Count after the relay restarted = %d, %v; want 0", n, err)
	}
	if ok, err := routerBus.Acquire(ctx, "tok", "r1", 0); err != nil || !ok {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	if err := reborn.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	if n, err := routerBus.Count(ctx, "tok"); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want the new session only", n, err)
	}
}

// Counts Redis lost (an outage outlasting them, or lost data) come back
// from the relay's own count at its next Register; a larger Redis count
// (sessions still opening) stands.
func TestRegisterRestoresLostCounts(t *testing.T) {
	srv := redistest.Start(t)
	routerBus, relayBus := newBus(t, srv.URL()), newBus(t, srv.URL())
	ctx := context.Background()
	info := control.RelayInfo{ID: "r1", FQDN: "r1.example", Capacity: 10}
	if err := relayBus.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ok, err := routerBus.Acquire(ctx, "tok", "r1", 0); err != nil || !ok {
			t.Fatalf("Acquire = %v, %v", ok, err)
		}
	}
	if _, err := redistest.Do(srv.Addr(), "FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	info.Tokens = map[string]int{"tok": 3}
	if err := relayBus.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	if n, err := routerBus.Count(ctx, "tok"); err != nil || n != 3 {
		t.Fatalf("Count after the loss = %d, %v; want the relay's 3", n, err)
	}
	if ok, err := routerBus.Acquire(ctx, "tok", "r1", 4); err != nil || !ok {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	if err := relayBus.Register(ctx, info); err != nil {
		t.Fatal(err)
	}
	if n, err := routerBus.Count(ctx, "tok"); err != nil || n != 4 {
		t.Fatalf("Count with one session opening = %d, %v; want 4", n, err)
	}
	if ok, err := routerBus.Acquire(ctx, "tok", "r1", 4); err != nil || ok {
		t.Fatalf("Acquire at the limit = %v, %v; want refused", ok, err)
	}
}

func TestEstablish(t *testing.T) {
	srv := redistest.Start(t)
	routerBus, relayBus := newBus(t, srv.URL()), newBus(t, srv.URL())
	// Requests for these targets wait until the channel is closed.
	gates := map[string]chan struct{}{
		"ws://slow": make(chan struct{}), "ws://late": make(chan struct{}), "ws://second": make(chan struct{}),
	}
	secondStarted := make(chan struct{})
	serve(t, relayBus, routerBus, "r1", func(req control.EstablishRequest) control.EstablishReply {
		if req.Target == "ws://second" {
			close(secondStarted)
		}
		if gate, ok := gates[req.Target]; ok {
			<-gate
		}
		return echoHandler("r1.example")(req)
	})
	// Opening the gates (idempotently) before Serve's cleanup keeps a
	// failed subtest from hanging the test in Serve.
	open := make(map[string]func())
	for target, gate := range gates {
		open[target] = sync.OnceFunc(func() { close(gate) })
		t.Cleanup(open[target])
	}
	ctx := context.Background()

	t.Run("round trip", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("req-%d", i)
				reply, err := routerBus.Establish(ctx, "r1", control.EstablishRequest{ID: id, Target: "ws://t/" + id})
				if err != nil {
					t.Errorf("Establish %s: %v", id, err)
					return
				}
				want := control.EstablishReply{ID: id, OK: true, FQDN: "u.r1.example", Socket: "s-" + id, Protocol: "ws://t/" + id}
				if reply != want {
					t.Errorf("Establish %s = %+v, want %+v", id, reply, want)
				}
			}()
		}
		wg.Wait()
	})

	t.Run("relay gone", func(t *testing.T) {
		_, err := routerBus.Establish(ctx, "nobody", control.EstablishRequest{Target: "ws://x"})
		if !errors.Is(err, control.ErrRelayGone) {
			t.Fatalf("Establish to nobody: %v, want ErrRelayGone", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := routerBus.Establish(tctx, "r1", control.EstablishRequest{Target: "ws://slow"})
		if !errors.Is(err, control.ErrBusTimeout) {
			t.Fatalf("Establish to a slow relay: %v, want ErrBusTimeout", err)
		}
		open["ws://slow"]()
	})

	t.Run("late reply to a retried request", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := routerBus.Establish(tctx, "r1", control.EstablishRequest{ID: "dup", Target: "ws://late"})
		if !errors.Is(err, control.ErrBusTimeout) {
			t.Fatalf("first try: %v, want ErrBusTimeout", err)
		}
		type result struct {
			reply control.EstablishReply
			err   error
		}
		second := make(chan result, 1)
		go func() {
			reply, err := routerBus.Establish(ctx, "r1", control.EstablishRequest{ID: "dup", Target: "ws://second"})
			second <- result{reply, err}
		}()
		<-secondStarted
		open["ws://late"]()
		// Give the late reply time to arrive first; the check below holds
		// whatever the timing, the pause only makes a regression show.
		time.Sleep(100 * time.Millisecond)
		open["ws://second"]()
		r := <-second
		if r.err != nil || r.reply.Protocol != "ws://second" {
			t.Fatalf("retry got %+v, %v; want the reply to ws://second", r.reply, r.err)
		}
	})
}

// TestServeWaitsForHandlers checks that Serve returns only after the
// handlers it started have returned.
func TestServeWaitsForHandlers(t *testing.T) {
	srv := redistest.Start(t)
	routerBus, relayBus := newBus(t, srv.URL()), newBus(t, srv.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, gate := make(chan struct{}, 1), make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	defer release()
	done := make(chan error, 1)
	go func() {
		done <- relayBus.Serve(ctx, "r1", func(req control.EstablishRequest) control.EstablishReply {
			started <- struct{}{}
			<-gate
			return control.EstablishReply{OK: true}
		})
	}()
	estDone := make(chan error, 1)
	go func() {
		var err error
		for range 100 { // until Serve has subscribed
			ectx, ecancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = routerBus.Establish(ectx, "r1", control.EstablishRequest{})
			ecancel()
			if !errors.Is(err, control.ErrRelayGone) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		estDone <- err
	}()
	<-started
	cancel()
	select {
	case <-done:
		t.Fatal("Serve returned while a handler was running")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The reply still goes out after Serve's context ended.
	if err := <-estDone; err != nil {
		t.Fatalf("Establish: %v", err)
	}
}

func TestOutage(t *testing.T) {
	srv := redistest.Start(t)
	routerBus, relayBus := newBus(t, srv.URL()), newBus(t, srv.URL())
	serve(t, relayBus, routerBus, "r1", echoHandler("r1.example"))
	ctx := context.Background()

	srv.Stop()
	// A generous bound: only a guard against hanging.
	const hang = 5 * time.Second
	start := time.Now()
	_, err := routerBus.Establish(ctx, "r1", control.EstablishRequest{Target: "ws://x"})
	if !errors.Is(err, control.ErrBusDown) {
		t.Errorf("Establish with Redis down: %v, want ErrBusDown", err)
	}
	if _, err := routerBus.Acquire(ctx, "tok", "r1", 0); !errors.Is(err, control.ErrBusDown) {
		t.Errorf("Acquire with Redis down: %v, want ErrBusDown", err)
	}
	if _, err := routerBus.Relays(ctx); !errors.Is(err, control.ErrBusDown) {
		t.Errorf("Relays with Redis down: %v, want ErrBusDown", err)
	}
	if _, err := routerBus.Token(ctx, "tok"); !errors.Is(err, control.ErrBusDown) {
		t.Errorf("Token with Redis down: %v, want ErrBusDown", err)
	}
	if d := time.Since(start); d > hang {
		t.Errorf("calls with Redis down took %v", d)
	}

	srv.Restart()
	waitFor(t, 10*time.Second, "establish after restart", func() bool {
		ectx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		reply, err := routerBus.Establish(ectx, "r1", control.EstablishRequest{ID: "after", Target: "ws://x"})
		return err == nil && reply.OK && reply.ID == "after"
	})
	if ok, err := routerBus.Acquire(ctx, "tok", "r1", 1); err != nil || !ok {
		t.Errorf("Acquire after restart = %v, %v", ok, err)
	}
}

// TestHungRedis checks that a Redis that accepts but never answers turns
// into ErrBusDown instead of a hang.
func TestHungRedis(t *testing.T) {
	srv := redistest.Start(t)
	routerBus, relayBus := newBus(t, srv.URL()), newBus(t, srv.URL())
	serve(t, relayBus, routerBus, "r1", echoHandler("r1.example"))
	srv.Pause()
	t.Cleanup(srv.Resume)
	ctx := context.Background()
	const hang = 5 * time.Second // a guard only; OpTimeout is 1s
	start := time.Now()
	if _, err := routerBus.Acquire(ctx, "tok", "r1", 0); !errors.Is(err, control.ErrBusDown) {
		t.Errorf("Acquire with Redis hung: %v, want ErrBusDown", err)
	}
	_, err := routerBus.Establish(ctx, "r1", control.EstablishRequest{Target: "ws://x"})
	if !errors.Is(err, control.ErrBusDown) {
		t.Errorf("Establish with Redis hung: %v, want ErrBusDown", err)
	}
	if d := time.Since(start); d > hang {
		t.Errorf("calls with Redis hung took %v", d)
	}
	srv.Resume()
	waitFor(t, 10*time.Second, "establish after resume", func() bool {
		ectx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := routerBus.Establish(ectx, "r1", control.EstablishRequest{Target: "ws://x"})
		return err == nil
	})
}

// testAcquireExact has 100 goroutines over two buses race for a limit of
// 10.
func testAcquireExact(t *testing.T, a, b *redisbus.Bus, tokenName string) {
	t.Helper()
	ctx := context.Background()
	const limit = 10
	var (
		wg  sync.WaitGroup
		won atomic.Int32
	)
	for i := range 100 {
		bus, relayID := a, "r1"
		if i%2 == 1 {
			bus, relayID = b, "r2"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := bus.Acquire(ctx, tokenName, relayID, limit)
			if err != nil {
				t.Errorf("Acquire: %v", err)
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != limit {
		t.Fatalf("%d acquires won, want %d", won.Load(), limit)
	}
	if n, err := a.Count(ctx, tokenName); err != nil || n != limit {
		t.Fatalf("Count = %d, %v; want %d", n, err, limit)
	}
	// Release one (from whichever relay won some), and one more acquire
	// fits.
	for _, relayID := range []string{"r1", "r2"} {
		if err := b.Release(ctx, tokenName, relayID); err != nil {
			t.Fatal(err)
		}
		if n, _ := a.Count(ctx, tokenName); n == limit-1 {
			break
		}
	}
	if ok, err := a.Acquire(ctx, tokenName, "r2", limit); err != nil || !ok {
		t.Fatalf("Acquire after Release = %v, %v", ok, err)
	}
	if ok, err := a.Acquire(ctx, tokenName, "r2", limit); err != nil || ok {
		t.Fatalf("Acquire at the limit = %v, %v", ok, err)
	}
}

func TestAcquire(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newBus(t, srv.URL()), newBus(t, srv.URL())
	keepRegistered(t, a, control.RelayInfo{ID: "r1", Capacity: 100})
	keepRegistered(t, b, control.RelayInfo{ID: "r2", Capacity: 100})
	testAcquireExact(t, a, b, "tok")

	ctx := context.Background()
	// Releases never go below zero.
	for range 3 {
		if err := a.Release(ctx, "other", "r1"); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := a.Count(ctx, "other"); n != 0 {
		t.Fatalf("Count after extra releases = %d", n)
	}
	// Limit 0 has no limit but still counts.
	for range 5 {
		if ok, err := a.Acquire(ctx, "unlimited", "r1", 0); err != nil || !ok {
			t.Fatalf("Acquire without limit = %v, %v", ok, err)
		}
	}
	if n, _ := a.Count(ctx, "unlimited"); n != 5 {
		t.Fatalf("Count without limit = %d, want 5", n)
	}
}

func TestCountsVanishWithRelay(t *testing.T) {
	srv := redistest.Start(t)
	b := newBus(t, srv.URL())
	ctx := context.Background()
	keepRegistered(t, b, control.RelayInfo{ID: "live", Capacity: 10})
	if err := b.Register(ctx, control.RelayInfo{ID: "dying", Capacity: 10}); err != nil {
		t.Fatal(err)
	}
	for _, relayID := range []string{"dying", "dying", "dying", "live"} {
		if ok, err := b.Acquire(ctx, "tok", relayID, 4); err != nil || !ok {
			t.Fatalf("Acquire on %s = %v, %v", relayID, ok, err)
		}
	}
	if ok, _ := b.Acquire(ctx, "tok", "live", 4); ok {
		t.Fatal("Acquire over the limit succeeded")
	}
	// "dying" stops registering: its three counts go; "live" keeps its one
	// although it was acquired as long ago, because Register refreshes it.
	waitFor(t, 5*time.Second, "the dead relay's counts to vanish", func() bool {
		n, err := b.Count(ctx, "tok")
		return err == nil && n == 1
	})
	if ok, err := b.Acquire(ctx, "tok", "live", 4); err != nil || !ok {
		t.Fatalf("Acquire after expiry = %v, %v", ok, err)
	}
	// A relay whose counts dropped to zero keeps working after.
	for range 2 {
		if err := b.Release(ctx, "tok", "live"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "a beat to forget the zero count", func() bool {
		n, err := redistest.Do(srv.Addr(), "HEXISTS", "polysocket:{t:tok}:alive", "live")
		return err == nil && n == "0"
	})
	if ok, err := b.Acquire(ctx, "tok", "live", 4); err != nil || !ok {
		t.Fatalf("Acquire after release = %v, %v", ok, err)
	}
	waitFor(t, 5*time.Second, "count to settle", func() bool {
		n, err := b.Count(ctx, "tok")
		return err == nil && n == 1
	})
}

func TestTokens(t *testing.T) {
	srv := redistest.Start(t)
	b := newBus(t, srv.URL())
	ctx := context.Background()

	if _, err := b.Token(ctx, "nope"); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("Token(nope): %v, want ErrNotFound", err)
	}
	if err := b.DeleteToken(ctx, "nope"); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("DeleteToken(nope): %v, want ErrNotFound", err)
	}
	if err := b.PutToken(ctx, token.Token{Name: "bad"}); err == nil {
		t.Fatal("PutToken accepted a token without patterns")
	}
	want := []token.Token{
		{Name: "app", Targets: []string{"wss://api.example.com/live/*"}, Origins: []string{"https://app.example.com"}, Limit: 3},
		{Name: "dev", Targets: []string{"ws://localhost:*"}, Origins: []string{"*"}},
	}
	for _, tok := range want {
		if err := b.PutToken(ctx, tok); err != nil {
			t.Fatalf("PutToken(%s): %v", tok.Name, err)
		}
	}
	got, err := b.Token(ctx, "app")
	if err != nil || got.Name != "app" || got.Limit != 3 || got.Targets[0] != want[0].Targets[0] {
		t.Fatalf("Token(app) = %+v, %v", got, err)
	}
	list, err := b.ListTokens(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "app" || list[1].Name != "dev" {
		t.Fatalf("ListTokens = %+v, %v", list, err)
	}
	if err := b.DeleteToken(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Token(ctx, "app"); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("Token after delete: %v", err)
	}
}

func TestPassword(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPassword("s3cret"))
	b := newBus(t, srv.URL())
	ctx := context.Background()
	tok := token.Token{Name: "t", Targets: []string{"ws://localhost:*"}, Origins: []string{"*"}}
	if err := b.PutToken(ctx, tok); err != nil {
		t.Fatalf("PutToken with password: %v", err)
	}
	if _, err := b.Token(ctx, "t"); err != nil {
		t.Fatalf("Token with password: %v", err)
	}
	log := zaptest.NewLogger(t)
	for _, url := range []string{"redis://:wrong@" + srv.Addr(), "redis://" + srv.Addr()} {
		if b, err := redisbus.New(redisbus.Config{URL: url}, log); err == nil {
			b.Close()
			t.Errorf("New(%s) succeeded without the right password", url)
		}
	}
}

func TestCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	// The two ways to name several nodes.
	var hosts []string
	for _, n := range cluster.Nodes {
		hosts = append(hosts, n.Addr())
	}
	routerBus := newBus(t, "redis://"+strings.Join(hosts, ","))
	relayBus := newBus(t, cluster.URL())
	ctx := context.Background()

	keepRegistered(t, relayBus, control.RelayInfo{ID: "r1", FQDN: "r1.example", Capacity: 10})
	keepRegistered(t, relayBus, control.RelayInfo{ID: "r2", FQDN: "r2.example", Capacity: 10})
	relays, err := routerBus.Relays(ctx)
	if err != nil || len(relays) != 2 {
		t.Fatalf("Relays = %+v, %v", relays, err)
	}

	serve(t, relayBus, routerBus, "r1", echoHandler("r1.example"))
	reply, err := routerBus.Establish(ctx, "r1", control.EstablishRequest{ID: "c1", Target: "ws://t"})
	if err != nil || !reply.OK || reply.Socket != "s-c1" {
		t.Fatalf("Establish = %+v, %v", reply, err)
	}
	// Relay ids chosen to land on other nodes than r1's channel still
	// find nobody.
	for _, id := range []string{"x", "y", "zz"} {
		if _, err := routerBus.Establish(ctx, id, control.EstablishRequest{}); !errors.Is(err, control.ErrRelayGone) {
			t.Fatalf("Establish to %s: %v, want ErrRelayGone", id, err)
		}
	}
	// Token names hash to different slots, so different nodes.
	for _, name := range []string{"alpha", "beta", "gamma"} {
		t.Run(name, func(t *testing.T) { testAcquireExact(t, routerBus, relayBus, name) })
	}
}
