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
	"go.uber.org/zap"
)

// discardTarget is a WebSocket target that reads and drops every message.
func discardTarget(f *testing.F) string {
	return wsTarget(f, func(r *http.Request, c *websocket.Conn) {
		c.SetReadLimit(1 << 20)
		for {
			if _, _, err := c.Read(r.Context()); err != nil {
				return
			}
		}
	})
}

// FuzzClientMemory drives three sessions with sends in and out of turn,
// fragments, retries and ends, under a small relay-wide bound, and checks
// after every step that each session's count is what it holds, and that
// the relay's total is never negative nor past the bound by more than the
// one finishing message; once the sessions are gone it is zero.
//
// Each op is three bytes: session and kind, the send's number ahead of
// the next in turn (0: in turn), and size and more.
func FuzzClientMemory(f *testing.F) {
	f.Add([]byte{0, 0, 0x81, 0, 1, 0x82, 0, 0, 0x03}, uint8(4))
	f.Add([]byte{1, 2, 0xff, 1, 1, 0xff, 1, 0, 0xff, 2, 0, 0x10, 3, 0, 0}, uint8(1))
	f.Add([]byte{0, 0, 0xbf, 1, 0, 0xbf, 2, 0, 0xbf, 0, 0, 0xbf, 1, 0, 0xbf}, uint8(0))
	const (
		maxMsg = 16 << 10
		frag   = 256 // size unit
	)
	target := discardTarget(f)
	f.Fuzz(func(t *testing.T, ops []byte, bound uint8) {
		if len(ops) > 3*64 {
			ops = ops[:3*64]
		}
		limit := int64(bound%32+1) * 2 << 10
		reg, err := session.New(session.Config{
			MaxBufferedTotal: limit, MaxMessage: maxMsg, MaxHeld: 8 << 10, SendWindow: 8, PingInterval: -1,
		}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ss := make([]*session.Session, 3)
		applied := make([]int64, 3) // the highest n answered in order, as the client sees it
		for i := range ss {
			if ss[i], err = reg.Open(ctx, session.OpenRequest{Target: target}); err != nil {
				t.Fatal(err)
			}
		}
		check := func(step int) {
			for i, s := range ss {
				if counted, held := session.ClientMem(s); counted != held {
					t.Fatalf("step %d: session %d counts %d, holds %d", step, i, counted, held)
				}
			}
			// The close messages of ended sessions count too: 72 each.
			if got := reg.Buffered(); got < 0 || got > limit+2*maxMsg+3*72 {
				t.Fatalf("step %d: total %d, want 0…%d", step, got, limit+2*maxMsg)
			}
		}
		for k := 0; k+2 < len(ops); k += 3 {
			i := int(ops[k]) % 3
			if ops[k]&0x80 != 0 {
				ss[i].Shutdown(1000, "")
				check(k)
				continue
			}
			n := applied[i] + 1 + int64(ops[k+1]%10)
			size := int(ops[k+2]&0x3f) * frag
			req := session.SendRequest{N: n, More: ops[k+2]&0x80 != 0, Data: bytes.Repeat([]byte{'x'}, size)}
			err := ss[i].Send(ctx, req)
			switch {
			case err == nil && n == applied[i]+1:
				applied[i] = n
			case err == nil, errors.Is(err, session.ErrBusy), errors.Is(err, session.ErrHeldFull),
				errors.Is(err, session.ErrWindow), errors.Is(err, session.ErrClosed):
			case errors.Is(err, session.ErrTooLarge), errors.Is(err, session.ErrFragmentType):
				applied[i] = n
			default:
				t.Fatalf("send %+v: %v", req, err)
			}
			check(k)
		}
		if err := reg.Close(ctx, 1001, "fuzz over"); err != nil {
			t.Fatal(err)
		}
		for i, s := range ss {
			if counted, _ := session.ClientMem(s); counted != 0 {
				t.Fatalf("session %d still counts %d bytes after it ended", i, counted)
			}
		}
		reg.Stop()
		if got := reg.Buffered(); got != 0 {
			t.Fatalf("%d bytes still counted once every session is gone", got)
		}
	})
}
