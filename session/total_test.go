package session_test

import (
	"context"
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/session"
)

// floodServer is a target that writes numbered binary messages of size
// bytes (the number, big-endian, in the first 8) as fast as it can, up
// to a million, until the connection ends.
func floodServer(t *testing.T, size int) string {
	return wsTarget(t, func(r *http.Request, c *websocket.Conn) {
		// Answers the relay's close at once, which ends the writes.
		ctx := c.CloseRead(r.Context())
		msg := make([]byte, size)
		for i := uint64(0); i < 1e6; i++ {
			binary.BigEndian.PutUint64(msg, i)
			if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
				return
			}
		}
	})
}

// Eight flooded sessions whose clients take nothing hold MaxBufferedTotal
// together (plus at most a message each), not eight times MaxBuffered.
// A session whose client drains it goes on moving, in order and without
// loss, while the others stay paused; nothing is counted once every
// session is gone.
func TestRelayWideBufferBound(t *testing.T) {
	const (
		size     = 1024
		perMsg   = size + 72
		limit    = 256 << 10
		sessions = 8
	)
	target := floodServer(t, size)
	reg := newRegistry(t, session.Config{MaxBuffered: limit, MaxBufferedTotal: limit, PingInterval: -1})
	ss := make([]*session.Session, sessions)
	for i := range ss {
		ss[i] = open(t, reg, target)
	}
	bound := int64(limit + sessions*perMsg)
	allPaused := func() bool {
		for _, s := range ss {
			if !s.Paused() {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !allPaused() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !allPaused() {
		t.Fatal("not every session stopped reading its target")
	}
	if got := reg.Buffered(); got < limit || got > bound {
		t.Fatalf("sessions hold %d bytes together, want %d…%d (without the bound: up to %d)", got, limit, bound, sessions*limit)
	}

	// Drain the first session for four times what it may buffer.
	s := ss[0]
	var next uint64
	var ack int64
	for polls := 0; next*perMsg < 4*limit; polls++ {
		if polls > 10000 {
			t.Fatalf("only %d messages after %d polls", next, polls)
		}
		b := poll(t, s, session.PollRequest{HasAck: true, Ack: ack, TTL: 5 * time.Second, MaxBytes: 64 << 10})
		for _, m := range b.Messages {
			if m.Kind != session.Binary || len(m.Data) != size {
				t.Fatalf("message %d: kind %v, %d bytes", next, m.Kind, len(m.Data))
			}
			if got := binary.BigEndian.Uint64(m.Data); got != next {
				t.Fatalf("message %d is number %d: lost, duplicated or out of order", next, got)
			}
			next++
			ack = m.Seq
		}
		if got := reg.Buffered(); got > bound {
			t.Fatalf("sessions hold %d bytes together while one drains, over %d", got, bound)
		}
	}
	for _, o := range ss[1:] {
		if !o.Paused() {
			t.Fatal("a session whose client took nothing read on")
		}
	}

	// End every session; each client takes the rest and acks the close,
	// which removes the session.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Close(ctx, 1001, "test over"); err != nil {
		t.Fatal(err)
	}
	for i, s := range ss {
		var ack int64
		closed := false
		for polls := 0; !closed; polls++ {
			if polls > 1000 {
				t.Fatalf("session %d: no close message after %d polls", i, polls)
			}
			b := poll(t, s, session.PollRequest{HasAck: true, Ack: ack, MaxBytes: 64 << 10})
			for _, m := range b.Messages {
				ack = m.Seq
				closed = closed || m.Kind == session.Close
			}
		}
		_, _ = s.Poll(ctx, session.PollRequest{HasAck: true, Ack: ack, TTL: time.Second, MaxBytes: 1 << 10})
	}
	if got := reg.Buffered(); got != 0 {
		t.Fatalf("%d bytes still counted after every session was removed", got)
	}
}
