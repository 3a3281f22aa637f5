package session_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polysocket/polysocket/session"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// atomicCounter is a session.Counter that adds up.
type atomicCounter struct{ v atomic.Int64 }

func (c *atomicCounter) Add(d float64) { c.v.Add(int64(d)) }

// TestCountersAndCauses checks the traffic counters and the cause each
// way of ending records.
func TestCountersAndCauses(t *testing.T) {
	url, _ := echoServer(t)

	var toMsgs, toBytes, fromMsgs, fromBytes, held atomicCounter
	ended := make(chan session.Cause, 8)
	reg, err := session.New(session.Config{
		IdleTimeout: 300 * time.Millisecond,
		Counters: session.Counters{
			MessagesToTarget: &toMsgs, BytesToTarget: &toBytes,
			MessagesFromTarget: &fromMsgs, BytesFromTarget: &fromBytes,
			PollsHeld: &held,
		},
		OnEnd: func(s *session.Session, code int) { ended <- s.Cause() },
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = reg.Close(ctx, 1001, "test over")
		reg.Stop()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func() *session.Session {
		s, err := reg.Open(ctx, session.OpenRequest{Target: url, Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	expect := func(want session.Cause) {
		t.Helper()
		select {
		case got := <-ended:
			if got != want {
				t.Fatalf("cause %v, want %v", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("no end, want %v", want)
		}
	}

	s := open()
	if s.Cause() != session.CauseNone {
		t.Fatalf("live session has cause %v", s.Cause())
	}
	// A held poll counts until a message answers it.
	done := make(chan session.Batch, 1)
	holdPoll(ctx, ctx, s, &held, session.PollRequest{TTL: 5 * time.Second, MaxBytes: 1 << 20}, done)
	if err := s.Send(ctx, session.SendRequest{More: true, Data: []byte("ab")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, session.SendRequest{Data: []byte("cd")}); err != nil {
		t.Fatal(err)
	}
	if b := <-done; len(b.Messages) != 1 || string(b.Messages[0].Data) != "abcd" {
		t.Fatalf("poll got %+v", b)
	}
	if held.v.Load() != 0 {
		t.Errorf("polls held %d after the poll answered", held.v.Load())
	}
	if toMsgs.v.Load() != 1 || toBytes.v.Load() != 4 || fromMsgs.v.Load() != 1 || fromBytes.v.Load() != 4 {
		t.Errorf("counters to %d/%d from %d/%d, want 1/4 1/4", toMsgs.v.Load(), toBytes.v.Load(), fromMsgs.v.Load(), fromBytes.v.Load())
	}
	if err := s.CloseByClient(1000, ""); err != nil {
		t.Fatal(err)
	}
	expect(session.CauseClient)

	s = open()
	if err := s.Send(ctx, session.SendRequest{Data: []byte("bye")}); err != nil {
		t.Fatal(err)
	}
	expect(session.CauseTarget)

	open() // left alone: idle
	expect(session.CauseIdle)

	open().Shutdown(1001, "going")
	expect(session.CauseShutdown)
	if session.CauseShutdown.String() != "shutdown" || session.Cause(99).String() != "unknown" {
		t.Error("Cause names")
	}
}

// holdPoll polls s with req on pctx on its own goroutine, which sends
// the answer to done, and returns once the poll is held (or ctx ends).
func holdPoll(ctx, pctx context.Context, s *session.Session, held *atomicCounter, req session.PollRequest, done chan<- session.Batch) {
	go func() {
		b, _ := s.Poll(pctx, req)
		done <- b
	}()
	for held.v.Load() != 1 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// pollTimes is a session.Observer per poll outcome that keeps what it
// observed.
type pollTimes struct {
	mu  sync.Mutex
	obs [session.NumPollOutcomes][]float64
}

type outcomeObserver struct {
	p *pollTimes
	o session.PollOutcome
}

func (o outcomeObserver) Observe(v float64) {
	o.p.mu.Lock()
	o.p.obs[o.o] = append(o.p.obs[o.o], v)
	o.p.mu.Unlock()
}

func (p *pollTimes) observers() (obs [session.NumPollOutcomes]session.Observer) {
	for o := range obs {
		obs[o] = outcomeObserver{p, session.PollOutcome(o)}
	}
	return obs
}

// take returns what was observed for o, and forgets it.
func (p *pollTimes) take(o session.PollOutcome) []float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.obs[o]
	p.obs[o] = nil
	return v
}

// TestPollSeconds checks that each poll is observed once, by outcome,
// held or not, and that a held poll's time covers its hold.
func TestPollSeconds(t *testing.T) {
	url, _ := echoServer(t)
	var times pollTimes
	var held atomicCounter
	reg := newRegistry(t, session.Config{Counters: session.Counters{PollsHeld: &held, PollSeconds: times.observers()}})
	s := open(t, reg, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Held, then answered by a message sent after hold.
	const hold = 150 * time.Millisecond
	done := make(chan session.Batch, 1)
	holdPoll(ctx, ctx, s, &held, session.PollRequest{TTL: 5 * time.Second, MaxBytes: 1 << 20}, done)
	time.Sleep(hold)
	if err := s.Send(ctx, session.SendRequest{Data: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	if b := <-done; len(b.Messages) != 1 {
		t.Fatalf("held poll got %+v", b)
	}
	if got := times.take(session.PollMessages); len(got) != 1 || got[0] < hold.Seconds() {
		t.Errorf("held poll observed %v, want one ≥ %v", got, hold.Seconds())
	}

	// At once: the message is still queued (no ack).
	poll(t, s, session.PollRequest{MaxBytes: 1 << 20})
	s.Delivered(1 << 40)
	if b, err := s.Poll(ctx, session.PollRequest{}); err != nil || !b.Heartbeat {
		t.Fatalf("TTL 0 poll: %+v %v, want a heartbeat at once", b, err)
	}
	if got := times.take(session.PollMessages); len(got) != 1 {
		t.Errorf("immediate poll observed %v, want one", got)
	}

	// A held poll superseded by a newer one, which the TTL answers.
	holdPoll(ctx, ctx, s, &held, session.PollRequest{TTL: 5 * time.Second}, done)
	if b := poll(t, s, session.PollRequest{TTL: 50 * time.Millisecond}); !b.Heartbeat {
		t.Errorf("newer poll got %+v, want a heartbeat", b)
	}
	<-done
	if got := times.take(session.PollSuperseded); len(got) != 1 {
		t.Errorf("superseded observed %v, want one", got)
	}
	if got := times.take(session.PollHeartbeat); len(got) != 2 || got[1] < 0.05 {
		t.Errorf("heartbeats observed %v, want one at once and one ≥ 0.05", got)
	}

	// A held poll whose client goes away.
	pctx, pcancel := context.WithCancel(ctx)
	holdPoll(ctx, pctx, s, &held, session.PollRequest{TTL: 5 * time.Second}, done)
	pcancel()
	<-done
	if got := times.take(session.PollGone); len(got) != 1 {
		t.Errorf("gone observed %v, want one", got)
	}
	for o := range session.NumPollOutcomes {
		if got := times.take(o); len(got) != 0 {
			t.Errorf("%v observed %v, want none", o, got)
		}
	}
}

// TestPollSecondsAllocateNothing checks that observing a poll's time
// adds no allocation to a poll.
func TestPollSecondsAllocateNothing(t *testing.T) {
	url, _ := echoServer(t)
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "p"}, []string{"outcome"})
	var obs [session.NumPollOutcomes]session.Observer
	for o := range obs {
		obs[o] = h.WithLabelValues(session.PollOutcome(o).String())
	}
	allocs := func(c session.Counters) float64 {
		s := open(t, newRegistry(t, session.Config{Counters: c}), url)
		ctx := context.Background()
		return testing.AllocsPerRun(100, func() {
			_, _ = s.Poll(ctx, session.PollRequest{}) // a heartbeat at once
		})
	}
	if without, with := allocs(session.Counters{}), allocs(session.Counters{PollSeconds: obs}); with > without {
		t.Errorf("a poll allocates %v times observed, %v not", with, without)
	}
}
