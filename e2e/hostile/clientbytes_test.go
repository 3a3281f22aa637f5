package hostile

import (
	"context"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// Forty clients, each holding a session, begin a message of almost
// 1 MiB (f=1) and send nine 100 KiB messages ahead of their turn: about
// 75 MiB the relay would hold for them. With --max-buffered-total 8 MiB
// the real binary's peak resident memory (VmHWM) grows by less than
// 48 MiB, what does not fit is answered 503 unavailable, and a session
// that then finishes its message is echoed whole. Without the count the
// relay holds every byte (its peak grew by about 100 MiB).
func TestClientSendsWithinBound(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	const sessions, limit, bound = 40, 8 * mib, 48 * mib
	target := testenv.NewTarget(t, testenv.TargetOptions{})
	addr := proctest.FreeAddr(t)
	fqdn := "localhost:" + addr[strings.LastIndexByte(addr, ':')+1:]
	p := proctest.Start(t, proctest.Options{Addr: addr, Args: []string{
		"both", "--echo=false", "--create-rate", "0", "--fqdn", fqdn, "--log-level", "warn",
		"--max-buffered-total", strconv.Itoa(limit),
	}})
	cl := &testenv.Client{Base: p.URL(), HTTP: p.Client()}
	ss := make([]*testenv.Session, sessions)
	for i := range ss {
		ss[i] = cl.Open(t, target.URL, nil)
	}
	echo(t, ss[0], "before")
	before, _, err := procMemory(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	first := strings.Repeat("f", 1000<<10)
	later := strings.Repeat("h", 100<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	send := func(s *testenv.Session, n int64, more bool, d string) int {
		q := url.Values{"t": {"t"}, "d": {d}, "n": {strconv.FormatInt(n, 10)}}
		if more {
			q.Set("f", "1")
		}
		st, err := s.C.DoHost(ctx, http.MethodPost, p.URL()+"/s/"+s.Socket, s.Host, q, nil)
		if err != nil || (st != http.StatusCreated && st != http.StatusServiceUnavailable) {
			t.Fatalf("n=%d: status %d, %v; want 201 or 503", n, st, err)
		}
		return st
	}
	refused := 0
	for _, s := range ss {
		// n=2 and on: s.N is 1 for ss[0], which echoed "before".
		if send(s, s.N+1, true, first) != http.StatusCreated {
			refused++
		}
		for k := int64(3); k < 12; k++ {
			if send(s, s.N+k, false, later) != http.StatusCreated {
				refused++
			}
		}
	}
	rss, peak, err := procMemory(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RSS %d MiB before, peak %d MiB, now %d MiB; %d sends refused", before/mib, peak/mib, rss/mib, refused)
	if peak-before > bound {
		t.Fatalf("the relay's peak RSS grew %d MiB while clients held sends (bound %d MiB, --max-buffered-total %d MiB)", (peak-before)/mib, bound/mib, limit/mib)
	}
	if refused == 0 {
		t.Fatal("no send was answered 503: what clients send is not bounded")
	}
	// The first session finishes its message (its n=1 went first, so
	// it fit) and gets it back whole; the relay serves on.
	s := ss[0]
	if st := send(s, s.N+2, false, "end"); st != http.StatusCreated {
		t.Fatalf("finishing the message: status %d", st)
	}
	if got := s.Collect(t, 1, 30*time.Second); len(got[0].Data) != len(first)+3 {
		t.Fatalf("the finished message came back with %d bytes, want %d", len(got[0].Data), len(first)+3)
	}
}
