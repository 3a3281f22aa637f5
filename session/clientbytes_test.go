package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/session"
)

// sinkServer is a target that keeps every message it receives, by
// request path, and sends nothing: what the registry counts is then what
// the sessions hold of their clients' sends alone.
func sinkServer(t *testing.T) (url string, got func(path string) <-chan []byte) {
	var mu sync.Mutex
	chans := make(map[string]chan []byte)
	ch := func(path string) chan []byte {
		mu.Lock()
		defer mu.Unlock()
		c, ok := chans[path]
		if !ok {
			c = make(chan []byte, 64)
			chans[path] = c
		}
		return c
	}
	url = wsTarget(t, func(r *http.Request, c *websocket.Conn) {
		c.SetReadLimit(4 << 20)
		out := ch(r.URL.Path)
		for {
			_, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			out <- b
		}
	})
	return url, func(path string) <-chan []byte { return ch(path) }
}

// script is a client's sends: n=1 a 16 KiB fragment, n=2 the end of
// that message, n=3 and 4 a fragmented message, n=5…10 whole messages.
// Every send after n=2 arrives early (held) when sent first.
func script(i int) (sends []session.SendRequest, want [][]byte) {
	d := func(n, size int) []byte { return bytes.Repeat([]byte{byte('a' + (i+n)%26)}, size) }
	sends = append(sends,
		session.SendRequest{N: 1, More: true, Data: d(1, 16<<10)},
		session.SendRequest{N: 2, Data: d(2, 100)},
		session.SendRequest{N: 3, More: true, Data: d(3, 8<<10)},
		session.SendRequest{N: 4, Data: d(4, 8<<10)},
	)
	want = append(want, append(d(1, 16<<10), d(2, 100)...), append(d(3, 8<<10), d(4, 8<<10)...))
	for n := 5; n <= 10; n++ {
		sends = append(sends, session.SendRequest{N: int64(n), Data: d(n, 8<<10)})
		want = append(want, d(n, 8<<10))
	}
	return sends, want
}

// checkClientMem fails when a session's count disagrees with what it
// holds, or the relay's total is negative or over max.
func checkClientMem(t *testing.T, reg *session.Registry, ss []*session.Session, max int64) {
	t.Helper()
	for i, s := range ss {
		if counted, held := session.ClientMem(s); counted != held {
			t.Fatalf("session %d counts %d bytes of client data and holds %d", i, counted, held)
		}
	}
	if got := reg.Buffered(); got < 0 || got > max {
		t.Fatalf("the relay counts %d bytes, want 0…%d", got, max)
	}
}

// Sixteen clients each send a fragment and nine sends ahead of their
// turn: together they would hold about 1.3 MiB. What sessions hold of
// their clients' sends counts in MaxBufferedTotal (256 KiB): a send that
// does not fit is ErrBusy, and retried once the sends before it arrive it
// goes through; every message reaches its target whole and in order, and
// nothing stays counted.
func TestClientBytesWithinBound(t *testing.T) {
	const (
		sessions = 16
		limit    = 256 << 10
	)
	target, got := sinkServer(t)
	reg := newRegistry(t, session.Config{MaxBufferedTotal: limit, PingInterval: -1})
	ss := make([]*session.Session, sessions)
	for i := range ss {
		ss[i] = open(t, reg, fmt.Sprintf("%s/%d", target, i))
	}
	ctx := context.Background()
	busy := make([][]session.SendRequest, sessions) // refused, to retry
	var counted int64
	for i, s := range ss {
		sends, _ := script(i)
		// All but n=2 (which would complete the first message): n=1 is
		// assembled, the rest held.
		for _, req := range append(sends[:1:1], sends[2:]...) {
			switch err := s.Send(ctx, req); {
			case errors.Is(err, session.ErrBusy):
				busy[i] = append(busy[i], req)
			case err != nil:
				t.Fatalf("session %d, n=%d: %v", i, req.N, err)
			default:
				counted += int64(max(len(req.Data), 4096)) + 72
			}
			checkClientMem(t, reg, ss, limit)
		}
	}
	if got := reg.Buffered(); got != counted {
		t.Fatalf("the relay counts %d bytes, the sessions hold %d", got, counted)
	}
	refused := 0
	for _, b := range busy {
		refused += len(b)
	}
	if refused == 0 {
		t.Fatal("no send was refused: the clients' bytes are not bounded")
	}

	// Each client sends n=2, then retries what was refused.
	for i, s := range ss {
		sends, want := script(i)
		if err := s.Send(ctx, sends[1]); err != nil && !errors.Is(err, session.ErrBusy) {
			t.Fatalf("session %d, n=2: %v", i, err)
		} else if err != nil {
			busy[i] = append([]session.SendRequest{sends[1]}, busy[i]...)
		}
		for tries := 0; len(busy[i]) > 0; tries++ {
			if tries > 100 {
				t.Fatalf("session %d: %d sends still refused", i, len(busy[i]))
			}
			err := s.Send(ctx, busy[i][0])
			switch {
			case errors.Is(err, session.ErrBusy):
				busy[i] = append(busy[i][1:], busy[i][0])
			case err != nil:
				t.Fatalf("session %d, retry of n=%d: %v", i, busy[i][0].N, err)
			default:
				busy[i] = busy[i][1:]
			}
			checkClientMem(t, reg, ss, limit)
		}
		expectMessages(t, got(fmt.Sprintf("/%d", i)), want)
	}
	if got := reg.Buffered(); got != 0 {
		t.Fatalf("%d bytes still counted once every message was written", got)
	}
}

// expectMessages reads len(want) messages from ch and compares them.
func expectMessages(t *testing.T, ch <-chan []byte, want [][]byte) {
	t.Helper()
	for k, w := range want {
		select {
		case g := <-ch:
			if !bytes.Equal(g, w) {
				t.Fatalf("message %d: %d bytes, want %d (%q…)", k, len(g), len(w), w[:1])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d of %d never arrived", k, len(want))
		}
	}
}

// Eight clients each send a 60 KiB message in 4 KiB fragments, taking
// turns, with room for 64 KiB in all: every session soon holds part of a
// message and needs room for more. One session at a time may finish its
// message past the bound (by at most twice MaxMessage), so all of them
// finish instead of waiting on each other for ever.
func TestClientBytesFragmentsFinish(t *testing.T) {
	const (
		sessions = 8
		limit    = 64 << 10
		maxMsg   = 64 << 10
		frags    = 15
	)
	target, got := sinkServer(t)
	reg := newRegistry(t, session.Config{MaxBufferedTotal: limit, MaxMessage: maxMsg, PingInterval: -1})
	ss := make([]*session.Session, sessions)
	next := make([]int, sessions)
	for i := range ss {
		ss[i] = open(t, reg, fmt.Sprintf("%s/f%d", target, i))
	}
	frag := func(i, k int) []byte { return bytes.Repeat([]byte{byte('a' + (i+k)%26)}, 4<<10) }
	ctx := context.Background()
	done, busy := 0, 0
	for round := 0; done < sessions; round++ {
		if round > 10000 {
			t.Fatalf("after %d rounds only %d of %d messages finished", round, done, sessions)
		}
		for i, s := range ss {
			k := next[i]
			if k > frags {
				continue
			}
			err := s.Send(ctx, session.SendRequest{N: int64(k + 1), More: k < frags, Data: frag(i, k)})
			switch {
			case errors.Is(err, session.ErrBusy):
				busy++
				continue
			case err != nil:
				t.Fatalf("session %d, fragment %d: %v", i, k, err)
			}
			checkClientMem(t, reg, ss, limit+2*maxMsg)
			if next[i]++; next[i] > frags {
				done++
			}
		}
	}
	if busy == 0 {
		t.Fatal("no fragment was refused: the bound was never reached")
	}
	for i := range ss {
		var want []byte
		for k := 0; k <= frags; k++ {
			want = append(want, frag(i, k)...)
		}
		expectMessages(t, got(fmt.Sprintf("/f%d", i)), [][]byte{want})
	}
	if got := reg.Buffered(); got != 0 {
		t.Fatalf("%d bytes still counted once every message was written", got)
	}
}
