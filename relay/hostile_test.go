package relay_test

// Hostile clients (issue 10 items 1, 2 and 8): what a stranger without a
// session can make the relay hold, parameters the protocol does not
// know, and session requests on another host. Memory is read from this
// process (runtime.ReadMemStats); e2e/hostile/ does the same against the
// real binary with RSS.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/attack"
	"github.com/polysocket/polysocket/internal/testenv"
)

const mib = 1 << 20

// heapInuse is the heap in use after a collection.
func heapInuse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// echoOnce sends one text message and collects its echo.
func echoOnce(t *testing.T, s *testenv.Session, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s.SendText(ctx, text)
	mustStatus(t, "send "+text, st, err, http.StatusCreated)
	if got := s.Collect(t, 1, 30*time.Second); got[0].Data != text {
		t.Fatalf("echo of %q: %+v", text, got)
	}
}

// Slow bodies, parameter bombs and forged hosts, 200 of each, all
// connected at once and none holding a session, cost the relay less than
// 64 MiB of heap, each is refused from its head (403 socket, connection
// closed), and a live session is served meanwhile. Without the fix each
// slow body or forged host holds a 3 MiB buffer and each bomb a ~47 MiB
// map: the first batch alone crosses the bound.
func TestHostileClientsCostLittle(t *testing.T) {
	const n, bound = 200, 64 * mib
	st, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	echoOnce(t, s, "before")
	base := heapInuse()
	check := func() error {
		if used := heapInuse() - base; used > bound {
			return fmt.Errorf("the relay's process holds %d MiB more heap than before the attack (bound %d MiB)", used/mib, bound/mib)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fqdn := strings.TrimPrefix(st.URL, "http://")
	a, err := attack.Run(ctx, attack.Config{Addr: fqdn, FQDN: fqdn, LiveSocket: s.Socket, N: n, Batch: 50, Check: check})
	if err == nil {
		echoOnce(t, s, "during") // every attacker still connected
	}
	res := a.Release()
	if err != nil {
		t.Fatal(err)
	}
	for _, short := range res.Shortfalls(n) {
		t.Error(short)
	}
	echoOnce(t, s, "after")
}

// A session's holder sending slow bodies costs the bytes that arrived,
// not the Content-Length announced: 32 POSTs announcing 3 MiB that send
// 1 KiB each hold far less than 32 × 3 MiB.
func TestSlowBodyGrowsWithArrival(t *testing.T) {
	const conns, bound = 32, 16 * mib
	st, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	base := heapInuse()
	for range conns {
		conn, _ := rawConn(t, st)
		head := "POST /s/" + s.Socket + " HTTP/1.1\r\nHost: " + s.Host + "\r\nContent-Type: text/plain\r\nContent-Length: " +
			strconv.Itoa(3*mib) + "\r\n\r\nt=t&d=" + strings.Repeat("x", 1024)
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
	}
	// The heads are read within moments; without the fix each then
	// holds its whole announced body.
	time.Sleep(time.Second)
	if used := heapInuse() - base; used > bound {
		t.Fatalf("%d slow bodies of 1 KiB hold %d MiB of heap (bound %d MiB)", conns, used/mib, bound/mib)
	}
}

// A parameter bomb to a live session, on its own host, is refused as soon
// as the first unknown name is seen and allocates about its body, not a
// map of its ~470,000 keys (~49 MiB without the fix). To an unknown
// socket it allocates next to nothing: the body is never read.
func TestParameterBombAllocations(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{NetHTTP: true})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	s := (&testenv.Client{Base: st.URL}).Open(t, tg.URL, nil)
	bomb := attack.Bombs(3 * mib)
	for _, tc := range []struct {
		name, socket string
		status       int
		bound        uint64
	}{
		{"live socket", s.Socket, http.StatusBadRequest, 24 * mib}, // the body read, and its copy as a string
		{"unknown socket", "nosuchsocket", http.StatusForbidden, mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/s/"+tc.socket, strings.NewReader(string(bomb)))
			req.Host = s.Host
			req.Header.Set("Content-Type", "text/plain")
			rec := httptest.NewRecorder()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			st.Relay.Handler().ServeHTTP(rec, req)
			runtime.ReadMemStats(&after)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > tc.bound {
				t.Fatalf("a %d MiB bomb allocated %d MiB (bound %d MiB)", len(bomb)/mib, got/mib, tc.bound/mib)
			}
		})
	}
}

// Only the parameters an endpoint knows are taken (and "_", a cache
// buster): any other name is 400 params, in the query or the body, and
// its callback still gets the error.
func TestUnknownParametersRefused(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	for _, tc := range []struct {
		name, method, path, query, body string
		status                          int
		word                            string
	}{
		{"send unknown in query", http.MethodGet, "/s/", "t=t&d=x&x=1", "", http.StatusBadRequest, "params"},
		{"send unknown in body", http.MethodPost, "/s/", "", "t=t&d=x&zz=", http.StatusBadRequest, "params"},
		{"send a poll's parameter", http.MethodGet, "/s/", "t=t&d=x&ttl=0", "", http.StatusBadRequest, "params"},
		{"send empty name", http.MethodGet, "/s/", "t=t&d=x&=1", "", http.StatusBadRequest, "params"},
		{"send with cache buster", http.MethodGet, "/s/", "t=t&d=x&_=123", "", http.StatusCreated, ""},
		{"poll unknown", http.MethodGet, "/j/", "ttl=0&t=t", "", http.StatusBadRequest, "params"},
		{"poll with cache buster", http.MethodGet, "/j/", "ttl=0&_=1", "", http.StatusOK, ""},
		{"close unknown", http.MethodGet, "/c/", "code=1000&d=x", "", http.StatusBadRequest, "params"},
	} {
		for _, cb := range []string{"", biCB} {
			q := tc.query
			if cb != "" {
				q = "cb=" + url.QueryEscape(cb) + "&" + q
			}
			ctype := ""
			if tc.method == http.MethodPost {
				ctype = biForm
			}
			a := e.do(t, tc.method, tc.path+sock, strings.TrimSuffix(q, "&"), ctype, tc.body)
			t.Run(tc.name+" cb="+cb, func(t *testing.T) { biCheck(t, a, cb, tc.status, tc.word) })
		}
	}
}

// A session's requests are taken on its own host only: the same socket
// id on any other Host is as unknown as a wrong id (403 socket) and
// changes nothing, on the fast path and on net/http alike. The right
// host is taken in any case and without its port (a front proxy may
// drop it).
func TestSessionHostBinding(t *testing.T) {
	for _, netHTTP := range []bool{false, true} {
		t.Run(fmt.Sprintf("net/http %v", netHTTP), func(t *testing.T) {
			st := testenv.NewStack(t, testenv.StackOptions{NetHTTP: netHTTP})
			tg := testenv.NewTarget(t, testenv.TargetOptions{})
			c := &testenv.Client{Base: st.URL}
			s, other := c.Open(t, tg.URL, nil), c.Open(t, tg.URL, nil)
			fqdn := strings.TrimPrefix(st.URL, "http://")
			uniq, _, _ := strings.Cut(s.Host, ".")
			otherUniq, _, _ := strings.Cut(other.Host, ".")
			port := fqdn[strings.LastIndexByte(fqdn, ':')+1:]
			ctx := ctxT(t, 30*time.Second)
			for _, host := range []string{
				"evil.example", fqdn, "127.0.0.1", "localhost:" + port, // foreign, the relay's bare fqdn, the router's
				otherUniq + "." + fqdn, // another session's host
				uniq + ".evil.example:" + port, "x" + s.Host, uniq + "." + fqdn + "." + "evil.example",
				uniq + ".127.0.0.1:1", // the right name, another port
			} {
				forged := &testenv.Session{C: c, Host: host, Socket: s.Socket}
				if st, err := forged.SendText(ctx, "forged"); err != nil || st != http.StatusForbidden {
					t.Errorf("send on host %q: status %d, %v; want 403", host, st, err)
				}
				if r, st, err := forged.Poll(ctx, 0); err != nil || st != http.StatusForbidden || r.Code != "socket" {
					t.Errorf("poll on host %q: status %d, %+v, %v; want 403 socket", host, st, r, err)
				}
				if st, err := forged.Close(ctx, 4000, "forged"); err != nil || st != http.StatusForbidden {
					t.Errorf("close on host %q: status %d, %v; want 403", host, st, err)
				}
			}
			// Nothing forged was applied: the first echo is the real one.
			for i, host := range []string{strings.ToUpper(s.Host), uniq + ".127.0.0.1"} {
				s.Host = host
				text := "real " + strconv.Itoa(i)
				echoOnce(t, s, text)
			}
		})
	}
}
