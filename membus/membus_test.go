package membus_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/membus"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/router"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	_ router.Bus = (*membus.Bus)(nil)
	_ relay.Bus  = (*membus.Bus)(nil)
)

func TestRegistrationExpires(t *testing.T) {
	b := membus.New(100 * time.Millisecond)
	ctx := context.Background()
	_ = b.Register(ctx, control.RelayInfo{ID: "r1", Capacity: 5})
	if rs, _ := b.Relays(ctx); len(rs) != 1 || rs[0].ID != "r1" {
		t.Fatalf("Relays = %+v", rs)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rs, _ := b.Relays(ctx); len(rs) != 0; rs, _ = b.Relays(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("registration never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEstablish(t *testing.T) {
	b := membus.New(0)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := b.Establish(ctx, "r1", control.EstablishRequest{ID: "x"}); !errors.Is(err, control.ErrRelayGone) {
		t.Fatalf("no relay: %v", err)
	}
	release := make(chan struct{})
	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		_ = b.Serve(ctx, "r1", func(req control.EstablishRequest) control.EstablishReply {
			if req.Target == "slow" {
				<-release
			}
			return control.EstablishReply{ID: req.ID, OK: true, Socket: "s-" + req.ID}
		})
	}()
	for !b.Serving("r1") {
		time.Sleep(time.Millisecond)
	}
	rep, err := b.Establish(ctx, "r1", control.EstablishRequest{ID: "a"})
	if err != nil || !rep.OK || rep.Socket != "s-a" {
		t.Fatalf("Establish = %+v, %v", rep, err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer tcancel()
	if _, err := b.Establish(tctx, "r1", control.EstablishRequest{ID: "b", Target: "slow"}); !errors.Is(err, control.ErrBusTimeout) {
		t.Fatalf("slow relay: %v", err)
	}
	close(release)
	cancel()
	served.Wait() // Serve returns only after the slow handler finished
}

// Limits hold exactly under concurrency, and a dead relay's counts stop
// counting once its registration expires.
func TestAcquireLimitAndDeadRelay(t *testing.T) {
	b := membus.New(100 * time.Millisecond)
	ctx := context.Background()
	_ = b.Register(ctx, control.RelayInfo{ID: "r1", Capacity: 100})
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, _ := b.Acquire(ctx, "tok", "r1", 10); got {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 {
		t.Fatalf("%d acquired with limit 10", ok.Load())
	}
	_ = b.Release(ctx, "tok", "r1")
	if n, _ := b.Count(ctx, "tok"); n != 9 {
		t.Fatalf("Count = %d after a release", n)
	}
	time.Sleep(150 * time.Millisecond) // r1 stops registering: it died
	_ = b.Register(ctx, control.RelayInfo{ID: "r2", Capacity: 100})
	if got, _ := b.Acquire(ctx, "tok", "r2", 10); !got {
		t.Fatal("the dead relay's sessions still count")
	}
	if n, _ := b.Count(ctx, "tok"); n != 1 {
		t.Fatalf("Count = %d, want only r2's", n)
	}
}
