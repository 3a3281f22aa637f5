package ops

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// received records what an echo target got, so the test can tell a lost
// message from one whose echo was cut off by the close.
type received struct {
	mu  sync.Mutex
	got map[string]bool
}

func (r *received) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[s]
}

// echoRecording echoes and records every message.
func (r *received) echoRecording(ctx context.Context, c *websocket.Conn) {
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.got[string(data)] = true
		r.mu.Unlock()
		if err := c.Write(ctx, typ, data); err != nil {
			return
		}
	}
}

// drainClient is one echoing session: it sends a message, waits for its
// echo, and repeats until the session's close message comes.
type drainClient struct {
	s        *testenv.Session
	accepted []string // sends answered 201, in order
	echoed   []string // echoes received, in order
	close    *testenv.Msg
	err      error
}

func (d *drainClient) run(ctx context.Context, id int) {
	for k := 1; k < 100000 && ctx.Err() == nil; k++ {
		msg := fmt.Sprintf("s%d-m%d", id, k)
		st, err := d.s.SendText(ctx, msg)
		switch {
		case err != nil:
			d.err = fmt.Errorf("send %s: %w", msg, err)
			return
		case st == http.StatusCreated:
			d.accepted = append(d.accepted, msg)
		case st == http.StatusForbidden:
			// The session has ended: the close message is waiting.
		default:
			d.err = fmt.Errorf("send %s: status %d", msg, st)
			return
		}
		if !d.awaitEcho(ctx, msg) {
			return
		}
	}
}

// awaitEcho polls until msg's echo or the close message; it reports
// whether the session goes on.
func (d *drainClient) awaitEcho(ctx context.Context, msg string) bool {
	for ctx.Err() == nil {
		r, st, err := d.s.Poll(ctx, 2*time.Second)
		if err != nil || st != http.StatusOK {
			d.err = fmt.Errorf("poll: status %d, %v", st, err)
			return false
		}
		for _, m := range r.Messages {
			switch m.Type {
			case "text":
				d.echoed = append(d.echoed, m.Data)
			case "close":
				d.close = &m
				// Ack the close so the relay forgets the session at
				// once, as a finished client does.
				_, _, _ = d.s.Poll(ctx, 0)
				return false
			}
		}
		if len(d.echoed) > 0 && d.echoed[len(d.echoed)-1] == msg {
			return true
		}
	}
	return false
}

// TestDrainOnSIGTERM runs 50 live echoing sessions through `both`, sends
// SIGTERM, and checks the graceful drain: the relay stops taking
// sessions at once, live sessions go on until the drain timeout, then
// every client gets close 1001 on its poll, no message the relay
// accepted is lost, and the process exits in time.
func TestDrainOnSIGTERM(t *testing.T) {
	const (
		sessions     = 50
		drainTimeout = 3 * time.Second
		closeGrace   = 2 * time.Second
	)
	rec := &received{got: make(map[string]bool)}
	target := testenv.NewTarget(t, testenv.TargetOptions{Handle: rec.echoRecording})
	p := startProc(t, proctest.Options{}, "both", "--echo=false", "--create-rate", "0",
		"--drain-timeout", drainTimeout.String(), "--close-grace", closeGrace.String())
	cl := &testenv.Client{Base: p.URL(), HTTP: p.Client()}

	clients := make([]*drainClient, sessions)
	for i := range clients {
		clients[i] = &drainClient{s: cl.Open(t, target.URL, nil)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, d := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.run(ctx, i)
		}()
	}
	// Every session has done a round trip, and goes on doing them.
	testenv.WaitFor(t, 20*time.Second, "every session to echo", func() bool {
		for i := range clients {
			if !rec.has(fmt.Sprintf("s%d-m2", i)) {
				return false
			}
		}
		return true
	})

	p.Signal(t, syscall.SIGTERM)
	termAt := time.Now()

	// At once: not ready, and no new session (the relay re-registered as
	// draining).
	testenv.WaitFor(t, time.Second, "/readyz 503", func() bool {
		resp, err := p.Client().Get(p.URL() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if r, _, err := cl.Create(ctx, target.URL, nil); err != nil || r.Code != "unavailable" {
		t.Errorf("create while draining: %+v, %v; want code unavailable", r, err)
	}
	accepted := func() int {
		n := 0
		for _, d := range clients {
			n += len(d.accepted)
		}
		return n
	}
	_ = accepted // read only after wg.Wait below

	wg.Wait()
	if err := p.WaitExit(t, drainTimeout+closeGrace+10*time.Second); err != nil {
		t.Errorf("exit: %v", err)
	}
	took := time.Since(termAt)
	if took < drainTimeout {
		t.Errorf("exited %v after SIGTERM, before the drain timeout %v", took, drainTimeout)
	}
	t.Logf("exited %v after SIGTERM; %d messages accepted", took, accepted())

	for i, d := range clients {
		if d.err != nil {
			t.Errorf("session %d: %v", i, d.err)
			continue
		}
		if d.close == nil || d.close.Code != 1001 {
			t.Errorf("session %d: close message %+v, want code 1001", i, d.close)
		}
		for _, m := range d.accepted {
			if !rec.has(m) {
				t.Errorf("session %d: %s was accepted (201) but never reached the target", i, m)
			}
		}
		// Each send waits for its echo, so only the last accepted
		// message's echo may have been cut off by the close.
		if len(d.echoed) < len(d.accepted)-1 {
			t.Errorf("session %d: %d accepted, %d echoed", i, len(d.accepted), len(d.echoed))
		}
		for j, e := range d.echoed {
			if j >= len(d.accepted) || d.accepted[j] != e {
				t.Errorf("session %d: echo %d is %q, want %q", i, j, e, d.accepted[j])
				break
			}
		}
	}
	// Sessions went on during the drain: messages were accepted after
	// SIGTERM (each session did at least its first two before).
	if accepted() <= 2*sessions {
		t.Errorf("only %d messages accepted: sessions did not go on during the drain", accepted())
	}
}
