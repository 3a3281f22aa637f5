package router_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/token"
)

const cb = "cb.x_1$"

// tokens of the test stack: dev (any local target, any origin), strict
// (one origin), limited (one connection).
func testTokens() []token.Token {
	return []token.Token{
		token.Dev(),
		{Name: "strict", Targets: []string{"ws://127.0.0.1:*"}, Origins: []string{"https://app.example.com"}},
		{Name: "limited", Targets: []string{"ws://127.0.0.1:*"}, Origins: []string{"*"}, Limit: 1},
	}
}

// settle registers a cleanup, run before tg's own, that waits until tg
// has taken all *opened connections: testenv.Target joins a connection to
// its WaitGroup only after the handshake, so a handshake that completed
// just before cleanup would race its Wait.
func settle(t *testing.T, tg *testenv.Target, opened *atomic.Int32) {
	t.Cleanup(func() {
		testenv.WaitFor(t, 10*time.Second, "the target to take its connections", func() bool {
			return tg.Conns() >= int(opened.Load())
		})
	})
}

// createURL builds a /create URL from a valid base query changed by mod,
// with raw appended verbatim.
func createURL(base, target string, mod func(url.Values), raw string) string {
	q := url.Values{"from": {"router-test"}, "token": {"dev"}, "target": {target}}
	if mod != nil {
		mod(q)
	}
	s := base + "/create?" + q.Encode()
	if raw != "" {
		s += "&" + raw
	}
	return s
}

// both runs f for a plain JSON request (cb "") and a JSONP one.
func both(t *testing.T, f func(t *testing.T, cb string)) {
	t.Run("plain", func(t *testing.T) { t.Parallel(); f(t, "") })
	t.Run("jsonp", func(t *testing.T) { t.Parallel(); f(t, cb) })
}

// status is what /create answers for code: 200 for JSONP, else the
// code's own status.
func status(cb string, plain int) int {
	if cb != "" {
		return http.StatusOK
	}
	return plain
}

func withCB(mod func(url.Values), cb string) func(url.Values) {
	return func(q url.Values) {
		if mod != nil {
			mod(q)
		}
		if cb != "" {
			q.Set("cb", cb)
		}
	}
}

func TestCreateBadInput(t *testing.T) {
	t.Parallel()
	st := testenv.NewStack(t, testenv.StackOptions{Tokens: testTokens()})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	var opened atomic.Int32
	settle(t, tg, &opened)
	port := tg.Listener.Addr().(*net.TCPAddr).Port
	c := newClient(t)
	set := func(k, v string) func(url.Values) { return func(q url.Values) { q.Set(k, v) } }
	del := func(k string) func(url.Values) { return func(q url.Values) { q.Del(k) } }
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	strict := func(q url.Values) { q.Set("token", "strict") }
	tests := []struct {
		name   string
		mod    func(url.Values)
		raw    string
		hdr    http.Header
		status int
		code   string // "" means success
	}{
		{name: "valid", status: 200},
		{name: "missing from", mod: del("from"), status: 400, code: "params"},
		{name: "empty from", mod: set("from", ""), status: 400, code: "params"},
		{name: "control char in from", mod: set("from", "a\x01"), status: 400, code: "params"},
		{name: "missing target", mod: del("target"), status: 400, code: "params"},
		{name: "empty target", mod: set("target", ""), status: 400, code: "params"},
		{name: "http target", mod: set("target", fmt.Sprintf("http://127.0.0.1:%d/", port)), status: 400, code: "params"},
		{name: "ftp target", mod: set("target", "ftp://127.0.0.1/"), status: 400, code: "params"},
		{name: "no scheme", mod: set("target", "127.0.0.1:80"), status: 400, code: "params"},
		{name: "userinfo", mod: set("target", fmt.Sprintf("ws://u:p@127.0.0.1:%d/", port)), status: 400, code: "params"},
		{name: "fragment", mod: set("target", fmt.Sprintf("ws://127.0.0.1:%d/#x", port)), status: 400, code: "params"},
		{name: "empty fragment", mod: set("target", fmt.Sprintf("ws://127.0.0.1:%d/#", port)), status: 400, code: "params"},
		{name: "dot-dot segment", mod: set("target", fmt.Sprintf("ws://127.0.0.1:%d/a/../b", port)), status: 400, code: "params"},
		{name: "encoded dot-dot", mod: set("target", fmt.Sprintf("ws://127.0.0.1:%d/a/%%2e%%2e/b", port)), status: 400, code: "params"},
		{name: "port 99999", mod: set("target", "ws://127.0.0.1:99999/"), status: 400, code: "params"},
		{name: "port 0", mod: set("target", "ws://127.0.0.1:0/"), status: 400, code: "params"},
		{name: "port not a number", mod: set("target", "ws://127.0.0.1:ab/"), status: 400, code: "params"},
		{name: "target with space", mod: set("target", "ws://127.0.0.1/a b"), status: 400, code: "params"},
		{name: "missing token", mod: del("token"), status: 400, code: "params"},
		{name: "unknown token", mod: set("token", "nope"), status: 403, code: "token"},
		{name: "origin allowed", mod: strict, hdr: hdr("Origin", "https://app.example.com"), status: 200},
		{name: "origin not allowed", mod: strict, hdr: hdr("Origin", "https://evil.example"), status: 403, code: "origin"},
		{name: "origin null", mod: strict, hdr: hdr("Origin", "null"), status: 403, code: "origin"},
		{name: "origin wins over referer", mod: strict, hdr: hdr("Origin", "https://evil.example", "Referer", "https://app.example.com/p"), status: 403, code: "origin"},
		{name: "referer allowed", mod: strict, hdr: hdr("Referer", "https://app.example.com/page?x=1"), status: 200},
		{name: "referer not allowed", mod: strict, hdr: hdr("Referer", "https://evil.example/page"), status: 403, code: "origin"},
		{name: "no origin and no referer", mod: strict, status: 403, code: "origin"},
		{name: "target not allowed", mod: set("target", "ws://example.com/"), status: 403, code: "target"},
		{name: "target not allowed for strict", mod: func(q url.Values) { strict(q); q.Set("target", fmt.Sprintf("ws://localhost:%d/", port)) }, hdr: hdr("Origin", "https://app.example.com"), status: 403, code: "target"},
		{name: "token checked before target", mod: func(q url.Values) { q.Set("token", "nope"); q.Set("target", "ws://example.com/") }, status: 403, code: "token"},
		{name: "params checked before token", mod: func(q url.Values) { q.Set("token", "nope"); q.Del("from") }, status: 400, code: "params"},
		{name: "protocols with control char", mod: set("protocols", "chat\x01"), status: 400, code: "params"},
		{name: "protocols with newline", mod: set("protocols", "a\nb"), status: 400, code: "params"},
		{name: "protocols with empty entry", mod: set("protocols", "a,,b"), status: 400, code: "params"},
		{name: "protocols with trailing comma", mod: set("protocols", "a,"), status: 400, code: "params"},
		{name: "protocols duplicate", mod: set("protocols", "a,b,a"), status: 400, code: "params"},
		{name: "protocols with separator", mod: set("protocols", "a/b"), status: 400, code: "params"},
		{name: "protocols non-ascii", mod: set("protocols", "é"), status: 400, code: "params"},
		{name: "why bogus", mod: set("why", "bogus"), status: 400, code: "params"},
		{name: "why empty", mod: set("why", ""), status: 400, code: "params"},
		{name: "why failed", mod: set("why", "failed"), status: 200},
		{name: "why timeout", mod: set("why", "timeout"), status: 200},
		{name: "why remembered", mod: set("why", "remembered"), status: 200},
		{name: "why forced", mod: set("why", "forced"), status: 200},
		{name: "why none", mod: set("why", "none"), status: 200},
		{name: "why case", mod: set("why", "Timeout"), status: 400, code: "params"},
		{name: "from twice", raw: "from=again", status: 400, code: "params"},
		{name: "token twice", raw: "token=dev", status: 400, code: "params"},
		{name: "bad percent-encoding", raw: "x=%zz", status: 400, code: "params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			both(t, func(t *testing.T, cb string) {
				a := do(t, c, http.MethodGet, createURL(st.URL, tg.URL+"/", withCB(tt.mod, cb), tt.raw), tt.hdr)
				if tt.code == "" {
					r := decode(t, a, cb, http.StatusOK)
					if !*r.OK || r.Socket == "" || r.FQDN == "" {
						t.Fatalf("answer %s, want a session", a.body)
					}
					opened.Add(1)
					return
				}
				checkError(t, a, cb, status(cb, tt.status), tt.code)
			})
		})
	}
}

func TestCreateBadCallback(t *testing.T) {
	t.Parallel()
	st := testenv.NewStack(t, testenv.StackOptions{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	c := newClient(t)
	tests := []struct {
		name string
		raw  string // the cb part of the query
		cb   string // what must not be reflected
	}{
		{"empty", "cb=", ""},
		{"call", "cb=" + url.QueryEscape("alert(1)"), "alert(1)"},
		{"leading digit", "cb=1abc", "1abc"},
		{"script", "cb=" + url.QueryEscape("</script><script>x"), "script>x"},
		{"too long", "cb=" + strings.Repeat("q", 129), strings.Repeat("q", 129)},
		{"double dot", "cb=aa..bb", "aa..bb"},
		{"hyphen", "cb=aa-bb", "aa-bb"},
		// The callback is checked first: a bad one wins over bad params.
		{"with bad params", "cb=zz-top&target=http://x/", "zz-top"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := do(t, c, http.MethodGet, createURL(st.URL, tg.URL+"/", nil, tt.raw), nil)
			checkBadCallback(t, a, tt.cb)
		})
	}
}

func TestCreateMethod(t *testing.T) {
	t.Parallel()
	st := testenv.NewStack(t, testenv.StackOptions{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	c := newClient(t)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			both(t, func(t *testing.T, cb string) {
				a := do(t, c, m, createURL(st.URL, tg.URL+"/", withCB(nil, cb), ""), nil)
				checkError(t, a, cb, status(cb, http.StatusMethodNotAllowed), "method")
				if cb == "" && a.header.Get("Allow") != "GET" {
					t.Errorf("Allow %q, want GET", a.header.Get("Allow"))
				}
			})
		})
	}
	t.Run("OPTIONS", func(t *testing.T) {
		t.Parallel()
		a := do(t, c, http.MethodOptions, st.URL+"/create", http.Header{"Origin": {"https://x.example"}, "Access-Control-Request-Method": {"GET"}})
		checkCommon(t, a)
		if a.status != http.StatusNoContent || len(a.body) != 0 {
			t.Fatalf("status %d body %q, want 204 and no body", a.status, a.body)
		}
	})
}

func TestCreateLimit(t *testing.T) {
	t.Parallel()
	st := testenv.NewStack(t, testenv.StackOptions{Tokens: testTokens()})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	var opened atomic.Int32
	settle(t, tg, &opened)
	c := newClient(t)
	limited := func(q url.Values) { q.Set("token", "limited") }
	a := do(t, c, http.MethodGet, createURL(st.URL, tg.URL+"/", limited, ""), nil)
	if r := decode(t, a, "", http.StatusOK); !*r.OK {
		t.Fatalf("first create: %s", a.body)
	}
	opened.Add(1)
	both(t, func(t *testing.T, cb string) {
		a := do(t, c, http.MethodGet, createURL(st.URL, tg.URL+"/", withCB(limited, cb), ""), nil)
		checkError(t, a, cb, status(cb, http.StatusTooManyRequests), "limit")
	})
}

func TestCreateUnavailable(t *testing.T) {
	t.Parallel()
	st := testenv.NewStack(t, testenv.StackOptions{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	c := newClient(t)
	ctx := t.Context()
	st.Relay.Drain(ctx)
	both(t, func(t *testing.T, cb string) {
		a := do(t, c, http.MethodGet, createURL(st.URL, tg.URL+"/", withCB(nil, cb), ""), nil)
		checkError(t, a, cb, status(cb, http.StatusServiceUnavailable), "unavailable")
	})
	if tg.Conns() != 0 {
		t.Errorf("the target got %d connections from a draining relay", tg.Conns())
	}
}

// handshakeServer does the WebSocket handshake by hand and answers with
// the given Sec-WebSocket-Protocol, whatever was offered. It counts the
// handshakes it answered. With hold it keeps the connection open
// afterwards; without, it hangs up at once (the dialer would otherwise
// wait up to 3 s reading the body of a refused handshake).
type handshakeServer struct {
	*httptest.Server
	n  atomic.Int32
	wg sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newHandshakeServer(t *testing.T, proto string, hold bool) *handshakeServer {
	hs := &handshakeServer{}
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		hs.wg.Add(1)
		defer hs.wg.Done()
		defer conn.Close()
		hs.n.Add(1)
		hs.mu.Lock()
		hs.conns = append(hs.conns, conn)
		hs.mu.Unlock()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]), proto)
		if brw.Flush() != nil || !hold {
			return
		}
		// Hold the connection until the relay hangs up or cleanup closes
		// it (bounded).
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
	}))
	t.Cleanup(func() {
		hs.Close()
		hs.mu.Lock()
		for _, c := range hs.conns {
			c.Close()
		}
		hs.mu.Unlock()
		hs.wg.Wait()
	})
	return hs
}

func (hs *handshakeServer) wsURL() string { return "ws" + strings.TrimPrefix(hs.URL, "http") + "/" }

func TestCreateDial(t *testing.T) {
	t.Parallel()
	st := testenv.NewStack(t, testenv.StackOptions{})
	c := newClient(t)

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		both(t, func(t *testing.T, cb string) {
			a := do(t, c, http.MethodGet, createURL(st.URL, "ws://"+addr+"/", withCB(nil, cb), ""), nil)
			checkError(t, a, cb, status(cb, http.StatusBadGateway), "dial")
		})
	})

	t.Run("not a websocket server", func(t *testing.T) {
		t.Parallel()
		hs := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(hs.Close)
		both(t, func(t *testing.T, cb string) {
			a := do(t, c, http.MethodGet, createURL(st.URL, "ws"+strings.TrimPrefix(hs.URL, "http")+"/", withCB(nil, cb), ""), nil)
			checkError(t, a, cb, status(cb, http.StatusBadGateway), "dial")
		})
	})

	t.Run("redirect", func(t *testing.T) {
		t.Parallel()
		tg := testenv.NewTarget(t, testenv.TargetOptions{})
		var hits atomic.Int32
		redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.Redirect(w, r, tg.Server.URL+"/", http.StatusFound)
		}))
		t.Cleanup(redir.Close)
		both(t, func(t *testing.T, cb string) {
			a := do(t, c, http.MethodGet, createURL(st.URL, "ws"+strings.TrimPrefix(redir.URL, "http")+"/", withCB(nil, cb), ""), nil)
			checkError(t, a, cb, status(cb, http.StatusBadGateway), "dial")
		})
		t.Cleanup(func() {
			if hits.Load() == 0 {
				t.Error("the redirecting server was never asked")
			}
			if n := tg.Conns(); n != 0 {
				t.Errorf("the redirect's location got %d connections", n)
			}
		})
	})

	t.Run("unoffered subprotocol", func(t *testing.T) {
		t.Parallel()
		hs := newHandshakeServer(t, "evil", false)
		for _, offered := range []string{"", "chat"} {
			t.Run("offered="+offered, func(t *testing.T) {
				t.Parallel()
				both(t, func(t *testing.T, cb string) {
					mod := withCB(func(q url.Values) {
						if offered != "" {
							q.Set("protocols", offered)
						}
					}, cb)
					a := do(t, c, http.MethodGet, createURL(st.URL, hs.wsURL(), mod, ""), nil)
					checkError(t, a, cb, status(cb, http.StatusBadGateway), "dial")
				})
			})
		}
		t.Cleanup(func() {
			if hs.n.Load() == 0 {
				t.Error("no handshake reached the server: the test proves nothing")
			}
		})
	})

	t.Run("offered subprotocol", func(t *testing.T) {
		t.Parallel()
		tg := testenv.NewTarget(t, testenv.TargetOptions{Subprotocols: []string{"chat"}})
		var opened atomic.Int32
		settle(t, tg, &opened)
		both(t, func(t *testing.T, cb string) {
			a := do(t, c, http.MethodGet, createURL(st.URL, tg.URL+"/", withCB(func(q url.Values) { q.Set("protocols", "other, chat") }, cb), ""), nil)
			r := decode(t, a, cb, http.StatusOK)
			if !*r.OK || r.Protocol != "chat" {
				t.Fatalf("answer %s, want ok with protocol chat", a.body)
			}
			opened.Add(1)
		})
	})

	t.Run("hand-made handshake with offered subprotocol", func(t *testing.T) {
		// The raw server is a working handshake: only the protocol makes
		// the unoffered case fail.
		t.Parallel()
		hs := newHandshakeServer(t, "chat", true)
		a := do(t, c, http.MethodGet, createURL(st.URL, hs.wsURL(), func(q url.Values) { q.Set("protocols", "chat") }, ""), nil)
		r := decode(t, a, "", http.StatusOK)
		if !*r.OK || r.Protocol != "chat" {
			t.Fatalf("answer %s, want ok with protocol chat", a.body)
		}
	})
}

func TestCreateOversizedURL(t *testing.T) {
	t.Parallel()
	st := testenv.NewStack(t, testenv.StackOptions{})
	// The product's server limits the request line and headers to 64 KiB
	// (--max-header-bytes); serve the stack's handler the same way.
	srv := httptest.NewUnstartedServer(st.Config.Handler)
	srv.Config.MaxHeaderBytes = 64 << 10
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t)
	long := createURL(srv.URL, "ws://127.0.0.1:1/"+strings.Repeat("a", 80<<10), nil, "")
	if a := do(t, c, http.MethodGet, long, nil); a.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d for an %d-byte URL, want 431", a.status, len(long))
	}
	// Under the limit the request reaches the router, which refuses the
	// over-long target itself.
	medium := createURL(srv.URL, "ws://127.0.0.1:1/"+strings.Repeat("a", 32<<10), nil, "")
	checkError(t, do(t, c, http.MethodGet, medium, nil), "", http.StatusBadRequest, "params")
}
