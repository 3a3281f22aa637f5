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
	target := silentTarget(t, closeOnPing)
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
	s := open(t, reg, silentTarget(t, waitClose))
	b := poll(t, s, session.PollRequest{HasAck: true, TTL: 5 * time.Second})
	if len(b.Messages) != 1 || b.Messages[0].Code != 1006 || b.Messages[0].Reason != "target did not answer a ping" {
		t.Fatalf("%+v, want the 1006 of a missed pong", b.Messages)
	}
}

// TestStreamingTargetIsAlive checks that a target whose messages keep
// arriving is alive though its pong does not come in time: on a slow
// link the pong waits behind the data in flight. The soak found it: under
// heavy load a target hop that sliced writes into bytes ended sessions
// with 1006 "target did not answer a ping" while the target's messages
// were still coming.
func TestStreamingTargetIsAlive(t *testing.T) {
	target := silentTarget(t, streamEvery) // stopped after the registry, which ends the session
	reg := newRegistry(t, session.Config{PingInterval: 20 * time.Millisecond, PingTimeout: 400 * time.Millisecond})
	s := open(t, reg, target)
	var got int64
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		b := poll(t, s, session.PollRequest{HasAck: true, Ack: got, TTL: 300 * time.Millisecond})
		for _, m := range b.Messages {
			if m.Kind == session.Close {
				t.Fatalf("after %d messages: close %d %q, want the session to go on", got, m.Code, m.Reason)
			}
			got = m.Seq
		}
	}
	if got < 5 {
		t.Fatalf("got %d messages in 1.5 s, want the stream", got)
	}
}

// What silentTarget does besides never answering a ping.
const (
	waitClose   = iota // wait until the relay closes
	closeOnPing        // close with 4200 once the first ping arrived
	streamEvery        // send a message every 20 ms
)

// silentTarget is a target that never answers a ping and does as then
// says.
func silentTarget(t *testing.T, then int) string {
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
		switch then {
		case closeOnPing:
			select {
			case <-pinged:
				_ = c.Close(4200, "done")
			case <-ctx.Done():
			}
		case streamEvery:
			for ctx.Err() == nil && c.Write(ctx, websocket.MessageText, []byte("tick")) == nil {
				select {
				case <-time.After(20 * time.Millisecond):
				case <-ctx.Done():
				}
			}
		default:
			<-ctx.Done()
		}
	}))
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// TestSlowAnswerIsNoMissedPong checks that the time the read loop spends
// writing a parked poll's answer to a slow client does not count against
// the target: the loop reads nothing meanwhile, so a pong waits behind
// it, as when the queue is full. The soak found it: a 256 KiB answer
// crawling to a client through a slow network ended healthy sessions
// with 1006 "target did not answer a ping".
func TestSlowAnswerIsNoMissedPong(t *testing.T) {
	url, _ := echoServer(t)
	reg := newRegistry(t, session.Config{PingInterval: 20 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	s := open(t, reg, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answered := make(chan session.Batch, 1)
	_, parked, err := s.PollPark(ctx, session.PollRequest{TTL: 5 * time.Second, MaxBytes: 1 << 20, HasAck: true}, 0,
		func(b session.Batch, err error) {
			time.Sleep(time.Second) // the client's network crawls
			answered <- b
		})
	if err != nil || !parked {
		t.Fatalf("PollPark: parked %v, err %v", parked, err)
	}
	if err := s.Send(ctx, session.SendRequest{N: 1, Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if b := <-answered; len(b.Messages) != 1 || string(b.Messages[0].Data) != "hi" {
		t.Fatalf("parked poll answered %+v, want the echo", b.Messages)
	}
	b := poll(t, s, session.PollRequest{HasAck: true, Ack: 1, TTL: 300 * time.Millisecond})
	if !b.Heartbeat {
		for _, m := range b.Messages {
			t.Errorf("message %+v", *m)
		}
		t.Fatal("after the slow answer: no heartbeat, want the session to go on")
	}
}
