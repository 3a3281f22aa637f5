package relay_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/session"
)

// digest is what the digest target answers for a message: its length
// and a hash prefix, so the echoes stay small.
func digest(b []byte) string {
	h := sha256.Sum256(b)
	return strconv.Itoa(len(b)) + ":" + hex.EncodeToString(h[:8])
}

// heapAlloc is the live heap after two collections (the second clears
// sync.Pool's victim cache).
func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// The attack, at half scale: twenty clients each begin a message
// of 512 KiB (f=1) and send nine 48 KiB messages ahead of their turn,
// about 18 MiB that the relay held uncounted. With a bound of 4 MiB
// the relay counts them, holds at most that (read from the heap, with a
// generous margin), and answers what does not fit 503 unavailable; each
// client then finishes its first message and retries what was refused,
// and every message reaches the target whole and in order. Nothing stays
// counted once the sessions are gone.
func TestRelayClientBytesBound(t *testing.T) {
	const (
		sessions = 20
		limit    = 4 << 20
		held     = 9
	)
	st := testenv.NewStack(t, testenv.StackOptions{Session: session.Config{MaxBufferedTotal: limit, PingInterval: -1}})
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, websocket.MessageText, []byte(digest(b))); err != nil {
				return
			}
		}
	}})
	reg := st.Relay.Registry()
	cl := &testenv.Client{Base: st.URL}
	ss := make([]*testenv.Session, sessions)
	for i := range ss {
		ss[i] = cl.Open(t, tg.URL, nil)
	}
	first := strings.Repeat("f", 512<<10)
	later := strings.Repeat("h", 48<<10)
	send := func(s *testenv.Session, n int, more bool, d string) string {
		t.Helper()
		q := url.Values{"t": {"t"}, "d": {d}, "n": {strconv.Itoa(n)}}
		if more {
			q.Set("f", "1")
		}
		var r struct{ Code string }
		st, err := s.C.DoHost(context.Background(), http.MethodPost, st.URL+"/s/"+s.Socket, s.Host, q, &r)
		switch {
		case err != nil:
			t.Fatal(err)
		case st == http.StatusCreated:
			return ""
		case st != http.StatusServiceUnavailable || r.Code != "unavailable":
			t.Fatalf("n=%d: status %d, code %q; want 201, or 503 unavailable", n, st, r.Code)
		}
		return r.Code
	}

	base := heapAlloc()
	refused := make([][]int, sessions) // the numbers answered 503
	for i, s := range ss {
		if send(s, 1, true, first) != "" {
			refused[i] = append(refused[i], 1)
		}
		for n := 3; n < 3+held; n++ {
			if send(s, n, false, later) != "" {
				refused[i] = append(refused[i], n)
			}
		}
		if got := reg.Buffered(); got > limit {
			t.Fatalf("the relay counts %d bytes, over the bound %d", got, limit)
		}
	}
	grown := heapAlloc() - base
	t.Logf("heap grew %d KiB; the relay counts %d KiB", grown>>10, reg.Buffered()>>10)
	if grown > limit+6<<20 {
		t.Fatalf("the heap grew %d MiB while clients hold sends, with a bound of %d MiB", grown>>20, limit>>20)
	}
	if reg.Buffered() < limit/2 {
		t.Fatalf("the relay counts %d bytes of what its clients sent, want about %d", reg.Buffered(), limit)
	}
	total := 0
	for _, r := range refused {
		total += len(r)
	}
	if total == 0 {
		t.Fatal("no send was answered 503: the clients' bytes are not bounded")
	}

	// Each client finishes its first message and retries what was refused.
	want := []string{digest([]byte(first + "end"))}
	for range held {
		want = append(want, digest([]byte(later)))
	}
	for i, s := range ss {
		pending := append(refused[i], 2)
		for tries := 0; len(pending) > 0; tries++ {
			if tries > 200 {
				t.Fatalf("session %d: sends %v still refused", i, pending)
			}
			n := pending[0]
			d, more := later, false
			switch n {
			case 1:
				d, more = first, true
			case 2:
				d = "end"
			}
			if send(ss[i], n, more, d) != "" {
				pending = append(pending[1:], n)
				time.Sleep(time.Millisecond)
				continue
			}
			pending = pending[1:]
		}
		got := s.Collect(t, len(want), 20*time.Second)
		for k, m := range got {
			if m.Type != "text" || m.Data != want[k] {
				t.Fatalf("session %d, message %d: %+v, want %q", i, k, m, want[k])
			}
		}
	}
	for _, s := range ss {
		if code, err := s.Close(context.Background(), 1000, ""); err != nil || code != http.StatusOK {
			t.Fatalf("close: %d %v", code, err)
		}
		s.Collect(t, 1, 10*time.Second) // the close message; its ack removes the session
		_, _, _ = s.Poll(context.Background(), 0)
	}
	testenv.WaitFor(t, 10*time.Second, "nothing to be counted", func() bool { return reg.Buffered() == 0 })
}
