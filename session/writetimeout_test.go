package session_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/session"
)

// TestWriteTimeoutEndsSession checks the write watchdog: a target that
// stops reading makes a write hang, and WriteTimeout ends the session
// with 1006 (CauseWrite) instead of leaving the send stuck.
func TestWriteTimeoutEndsSession(t *testing.T) {
	stopCtx, stop := context.WithCancel(context.Background())
	target := wsTarget(t, func(*http.Request, *websocket.Conn) {
		<-stopCtx.Done() // never reads: the relay's writes back up
	})
	t.Cleanup(stop) // runs before the target's cleanup waits for this handler
	reg := newRegistry(t, session.Config{WriteTimeout: 300 * time.Millisecond, PingInterval: -1})
	s := open(t, reg, target)

	msg := bytes.Repeat([]byte("x"), 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	for n := int64(1); n <= 256 && err == nil; n++ {
		err = s.Send(ctx, session.SendRequest{N: n, Data: msg})
	}
	if !errors.Is(err, session.ErrClosed) {
		t.Fatalf("sends to a target that does not read: %v, want ErrClosed", err)
	}
	b := poll(t, s, session.PollRequest{HasAck: true})
	last := b.Messages[len(b.Messages)-1]
	if last.Kind != session.Close || last.Code != int(websocket.StatusAbnormalClosure) || last.Reason != "writing to the target failed" {
		t.Fatalf("last message %+v, want the 1006 write-failure close", last)
	}
	if s.Cause() != session.CauseWrite {
		t.Fatalf("cause %v, want CauseWrite", s.Cause())
	}
}
