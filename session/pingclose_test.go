package session_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/session"
)

// TestCloseDuringPing checks that a target closing while a ping waits
// for its pong ends the session with the target's own close, not with
// 1006 "did not answer a ping": the ping fails because the connection
// closed, which is no missed pong. The soak found the race (a session
// its target closed with 4200 reached the client as 1006).
func TestCloseDuringPing(t *testing.T) {
	target := silentTarget(t, true)
	reg := newRegistry(t, session.Config{PingInterval: 20 * time.Millisecond, PingTimeout: 10 * time.Second})
	// The race is between the ping's end and the read loop's: several
	// sessions make a loss of it near certain without the fix.
	for i := range 20 {
		s := open(t, reg, target)
		b := poll(t, s, session.PollRequest{HasAck: true, TTL: 5 * time.Second})
		if len(b.Messages) != 1 || b.Messages[0].Kind != session.Close || b.Messages[0].Code != 4200 {
			t.Fatalf("session %d: %+v, want the target's close 4200", i, b.Messages)
		}
	}
}

// TestPingTimeout checks that a target that never answers a ping ends
// the session with 1006 once PingTimeout passes.
func TestPingTimeout(t *testing.T) {
	reg := newRegistry(t, session.Config{PingInterval: 20 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	s := open(t, reg, silentTarget(t, false))
	b := poll(t, s, session.PollRequest{HasAck: true, TTL: 5 * time.Second})
	if len(b.Messages) != 1 || b.Messages[0].Code != 1006 || b.Messages[0].Reason != "target did not answer a ping" {
		t.Fatalf("%+v, want the 1006 of a missed pong", b.Messages)
	}
}

// silentTarget is a target that never answers a ping; with closeOnPing
// it closes with 4200 once the first ping arrived.
func silentTarget(t *testing.T, closeOnPing bool) string {
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		pinged := make(chan struct{}, 1)
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			// Never pong: the relay's ping stays in flight until the close.
			OnPingReceived: func(context.Context, []byte) bool {
				select {
				case pinged <- struct{}{}:
				default:
				}
				return false
			},
		})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(r.Context())
		if !closeOnPing {
			<-ctx.Done()
			return
		}
		select {
		case <-pinged:
			_ = c.Close(4200, "done")
		case <-ctx.Done():
		}
	}))
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}
