package session_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polysocket/polysocket/session"
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
	go func() {
		b, _ := s.Poll(ctx, session.PollRequest{TTL: 5 * time.Second, MaxBytes: 1 << 20})
		done <- b
	}()
	for held.v.Load() != 1 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
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
