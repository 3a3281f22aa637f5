package session_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/zap"
)

// fzMsg is a message a target received.
type fzMsg struct {
	binary bool
	data   []byte
}

// fzTarget records the messages of each connection by request path.
type fzTarget struct {
	url string
	mu  sync.Mutex
	got map[string]chan fzMsg
}

func newFzTarget(f *testing.F) *fzTarget {
	ft := &fzTarget{got: make(map[string]chan fzMsg)}
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ft.mu.Lock()
		ch := ft.got[r.URL.Path]
		ft.mu.Unlock()
		c, err := websocket.Accept(w, r, nil)
		if err != nil || ch == nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			ch <- fzMsg{binary: typ == websocket.MessageBinary, data: b}
		}
	}))
	f.Cleanup(func() { srv.Close(); wg.Wait() })
	ft.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return ft
}

// fzOp is one decoded send of a fuzz input.
type fzOp struct {
	more, binary bool
	data         []byte
}

// decodeOps turns fuzz bytes into at most 48 sends: each op is a flag
// byte (bit 0 more, bit 1 binary) and a length byte (0–31 bytes of data).
func decodeOps(in []byte) []fzOp {
	var ops []fzOp
	for i := 0; i+1 < len(in) && len(ops) < 48; i += 2 {
		n := int(in[i+1] % 32)
		d := bytes.Repeat([]byte{byte('a' + len(ops)%26)}, n)
		ops = append(ops, fzOp{more: in[i]&1 != 0, binary: in[i]&2 != 0, data: d})
	}
	return ops
}

// model assembles ops as the protocol says: fragments join until one
// without more; a type change or an assembly over max drops the partial
// message.
func model(ops []fzOp, max int) []fzMsg {
	var (
		out    []fzMsg
		frag   []byte
		on     bool
		binary bool
	)
	for _, op := range ops {
		switch {
		case on && binary != op.binary:
			frag, on = nil, false
		case len(frag)+len(op.data) > max:
			frag, on = nil, false
		case op.more:
			if !on {
				on, binary = true, op.binary
			}
			frag = append(frag, op.data...)
		default:
			msg := append(append([]byte{}, frag...), op.data...)
			out = append(out, fzMsg{binary: op.binary, data: msg})
			frag, on = nil, false
		}
	}
	return out
}

// FuzzFragments sends sequences of fragments to a real session, in order
// (unnumbered) or numbered and delivered out of order, and checks that
// the target receives exactly the messages the protocol's assembly rules
// give, each as one WebSocket message.
func FuzzFragments(f *testing.F) {
	f.Add([]byte{1, 3, 0, 4}, false, uint8(0))
	f.Add([]byte{1, 3, 3, 4, 2, 5}, false, uint8(0))
	f.Add([]byte{3, 31, 3, 31, 2, 31, 0, 1}, true, uint8(7))
	f.Add([]byte{1, 0, 1, 0, 0, 0}, true, uint8(3))
	f.Add([]byte{0, 0}, false, uint8(0))
	const max = 64
	ft := newFzTarget(f)
	reg, err := session.New(session.Config{MaxMessage: max, MaxHeld: 1 << 20, PingInterval: -1}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = reg.Close(ctx, 1001, "fuzz over")
		reg.Stop()
	})
	var iter atomic.Int64
	f.Fuzz(func(t *testing.T, in []byte, numbered bool, shuffle uint8) {
		ops := decodeOps(in)
		path := "/" + strconv.FormatInt(iter.Add(1), 10)
		ch := make(chan fzMsg, 64)
		ft.mu.Lock()
		ft.got[path] = ch
		ft.mu.Unlock()
		defer func() {
			ft.mu.Lock()
			delete(ft.got, path)
			ft.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := reg.Open(ctx, session.OpenRequest{Target: ft.url + path, Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Shutdown(1000, "")
		send := func(req session.SendRequest) {
			err := s.Send(ctx, req)
			if err != nil && !errors.Is(err, session.ErrFragmentType) && !errors.Is(err, session.ErrTooLarge) {
				t.Fatalf("send %+v: %v", req, err)
			}
		}
		if numbered {
			// Deliver n = 1…len in a rotated, pairwise-swapped order:
			// early sends are held and applied in n order.
			order := make([]int, len(ops))
			for i := range order {
				order[i] = i
			}
			if len(order) > 1 {
				k := int(shuffle) % len(order)
				order = append(order[k:], order[:k]...)
				for i := 0; i+1 < len(order); i += 2 {
					if shuffle&(1<<(i%8)) != 0 {
						order[i], order[i+1] = order[i+1], order[i]
					}
				}
			}
			for _, i := range order {
				op := ops[i]
				send(session.SendRequest{N: int64(i + 1), More: op.more, Binary: op.binary, Data: op.data})
			}
			// The end marker continues the numbering.
			send(session.SendRequest{N: int64(len(ops) + 1), Data: []byte("END")})
		} else {
			for _, op := range ops {
				send(session.SendRequest{More: op.more, Binary: op.binary, Data: op.data})
			}
			send(session.SendRequest{Data: []byte("END")})
		}
		// A dangling fragment swallows the end marker into its message
		// (or drops it on a type change), like any other final fragment.
		want := model(append(ops, fzOp{data: []byte("END")}), max)
		for i, w := range want {
			select {
			case g := <-ch:
				if g.binary != w.binary || !bytes.Equal(g.data, w.data) {
					t.Fatalf("message %d: got binary=%v %q, want binary=%v %q", i, g.binary, g.data, w.binary, w.data)
				}
			case <-ctx.Done():
				t.Fatalf("message %d of %d never arrived", i, len(want))
			}
		}
		select {
		case g := <-ch:
			t.Fatalf("unexpected extra message %q", g.data)
		default:
		}
	})
}
