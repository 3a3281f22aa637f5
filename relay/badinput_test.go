package relay_test

// Table-driven tests of every bad input to /s, /c and /j: each gets the
// exact status, content type, error word and headers. Helpers here are
// prefixed bi so they do not clash with the other tests of the package.

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/session"
)

const biCB = "biCb.$x_1"

// biEnv is a stack, a target and an HTTP client for bad-input tests.
type biEnv struct {
	st     *testenv.Stack
	tg     *testenv.Target
	c      *http.Client
	opened atomic.Int32 // sessions opened to tg
	hosts  sync.Map     // socket → its host, sent as the Host header
}

func newBIEnv(t *testing.T, so testenv.StackOptions, to testenv.TargetOptions) *biEnv {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e := &biEnv{
		st: testenv.NewStack(t, so),
		tg: testenv.NewTarget(t, to),
		c:  &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}
	// Runs before the target's cleanup: testenv.Target joins a connection
	// to its WaitGroup only after the handshake, so a handshake that
	// completed just before cleanup would race its Wait.
	t.Cleanup(func() {
		testenv.WaitFor(t, 10*time.Second, "the target to take its connections", func() bool {
			return e.tg.Conns() >= int(e.opened.Load())
		})
	})
	return e
}

// open creates a session and returns its socket id.
func (e *biEnv) open(t *testing.T) string {
	t.Helper()
	cl := &testenv.Client{Base: e.st.URL, HTTP: e.c}
	s := cl.Open(t, e.tg.URL+"/", nil)
	e.opened.Add(1)
	e.hosts.Store(s.Socket, s.Host)
	return s.Socket
}

// biAnswer is one HTTP response, read whole. The tests read its fields;
// std hands it to the shared checks of testenv.
type biAnswer struct {
	status int
	header http.Header
	body   []byte
}

// do sends method to path?query with an optional body of type ctype.
func (e *biEnv) do(t *testing.T, method, path, query, ctype, body string) biAnswer {
	t.Helper()
	u := e.st.URL + path
	if query != "" {
		u += "?" + query
	}
	var rd io.Reader
	if body != "" || method == http.MethodPost {
		rd = strings.NewReader(body)
	}
	hdr := http.Header{}
	if ctype != "" {
		hdr.Set("Content-Type", ctype)
	}
	if host, ok := e.hosts.Load(path[min(3, len(path)):]); ok {
		hdr["Host"] = []string{host.(string)}
	}
	a := testenv.Fetch(t, e.c, method, u, rd, hdr)
	return biAnswer{status: a.Status, header: a.Header, body: a.Body}
}

// biReply is the object of a relay answer.
type biReply struct {
	OK       *bool         `json:"ok"`
	Error    string        `json:"error"`
	Code     string        `json:"code"`
	Messages []testenv.Msg `json:"messages"`
}

// biCheckCommon asserts the headers every answer carries.
func biCheckCommon(t *testing.T, a biAnswer) {
	t.Helper()
	testenv.CheckHeaders(t, a.std())
}

// biCheck asserts an answer: success (code "") or an error with code.
func biCheck(t *testing.T, a biAnswer, cb string, status int, code string) biReply {
	t.Helper()
	var r biReply
	testenv.CheckAnswer(t, a.std(), cb, status, code, &r)
	return r
}

// biCheckBadCallback asserts the plain-text 400 of an invalid callback,
// which must not reflect it.
func biCheckBadCallback(t *testing.T, a biAnswer, cb string) {
	t.Helper()
	testenv.CheckBadCallback(t, a.std(), cb)
}

// biBoth runs f for a plain request and a JSONP one: the relay keeps its
// status codes for JSONP errors, so only the encoding differs.
func biBoth(t *testing.T, f func(t *testing.T, cb string)) {
	t.Run("plain", func(t *testing.T) { t.Parallel(); f(t, "") })
	t.Run("jsonp", func(t *testing.T) { t.Parallel(); f(t, biCB) })
}

func biWithCB(query, cb string) string {
	if cb == "" {
		return query
	}
	if query == "" {
		return "cb=" + cb
	}
	return query + "&cb=" + cb
}

const biForm = "application/x-www-form-urlencoded"

type biRow struct {
	name   string
	method string // default GET
	ep     string // "s", "c" or "j"
	query  string
	ctype  string
	body   string
	status int
	code   string // "" means success
}

func TestRelayBadParams(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	rows := []biRow{
		// The harness itself: good requests succeed.
		{name: "valid unnumbered send", ep: "s", query: "t=t&d=hi", status: 201},
		{name: "valid send by text/plain POST", method: "POST", ep: "s", ctype: "text/plain", body: "t=t&d=hi", status: 201},
		{name: "valid empty message", ep: "s", query: "t=t&d=", status: 201},

		{name: "t missing", ep: "s", query: "d=x", status: 400, code: "params"},
		{name: "t=x", ep: "s", query: "t=x&d=x", status: 400, code: "params"},
		{name: "t empty", ep: "s", query: "t=&d=x", status: 400, code: "params"},
		{name: "t=T", ep: "s", query: "t=T&d=x", status: 400, code: "params"},
		{name: "t=text", ep: "s", query: "t=text&d=x", status: 400, code: "params"},
		{name: "d missing", ep: "s", query: "t=t", status: 400, code: "params"},
		{name: "d missing binary", ep: "s", query: "t=b", status: 400, code: "params"},
		{name: "d bad base64", ep: "s", query: "t=b&d=" + url.QueryEscape("!!!!"), status: 400, code: "params"},
		{name: "d unpadded base64", ep: "s", query: "t=b&d=YQ", status: 400, code: "params"},
		{name: "d url-safe base64", ep: "s", query: "t=b&d=" + url.QueryEscape("-_-_"), status: 400, code: "params"},
		{name: "d invalid utf-8", ep: "s", query: "t=t&d=%FF", status: 400, code: "params"},
		{name: "d truncated utf-8", ep: "s", query: "t=t&d=a%C3", status: 400, code: "params"},
		{name: "d surrogate utf-8", ep: "s", query: "t=t&d=%ED%A0%80", status: 400, code: "params"},
		{name: "d invalid utf-8 in body", method: "POST", ep: "s", ctype: biForm, body: "t=t&d=%FF", status: 400, code: "params"},
		{name: "n=abc", ep: "s", query: "t=t&d=x&n=abc", status: 400, code: "params"},
		{name: "n=0", ep: "s", query: "t=t&d=x&n=0", status: 400, code: "params"},
		{name: "n=-1", ep: "s", query: "t=t&d=x&n=-1", status: 400, code: "params"},
		{name: "n=1.5", ep: "s", query: "t=t&d=x&n=1.5", status: 400, code: "params"},
		{name: "n empty", ep: "s", query: "t=t&d=x&n=", status: 400, code: "params"},
		{name: "n=+1", ep: "s", query: "t=t&d=x&n=%2B1", status: 400, code: "params"},
		{name: "n 65 ahead", ep: "s", query: "t=t&d=x&n=65", status: 400, code: "params"},
		{name: "n huge", ep: "s", query: "t=t&d=x&n=99999999999999999999", status: 400, code: "params"},
		{name: "f=2", ep: "s", query: "t=t&d=x&f=2", status: 400, code: "params"},
		{name: "f=true", ep: "s", query: "t=t&d=x&f=true", status: 400, code: "params"},
		{name: "send param twice", ep: "s", query: "t=t&t=t&d=x", status: 400, code: "params"},
		{name: "send param in query and body", method: "POST", ep: "s", query: "t=t", ctype: biForm, body: "t=t&d=x", status: 400, code: "params"},
		{name: "send unsupported content type", method: "POST", ep: "s", ctype: "application/json", body: `{"t":"t","d":"x"}`, status: 400, code: "params"},
		{name: "send bad percent-encoding", ep: "s", query: "t=t&d=%zz", status: 400, code: "params"},

		{name: "ttl empty", ep: "j", query: "ttl=", status: 400, code: "params"},
		{name: "ttl=1.5", ep: "j", query: "ttl=1.5", status: 400, code: "params"},
		{name: "ttl=-1", ep: "j", query: "ttl=-1", status: 400, code: "params"},
		{name: "ttl=abc", ep: "j", query: "ttl=abc", status: 400, code: "params"},
		{name: "ttl=1e3", ep: "j", query: "ttl=1e3", status: 400, code: "params"},
		{name: "a=-1", ep: "j", query: "ttl=0&a=-1", status: 400, code: "params"},
		{name: "a empty", ep: "j", query: "ttl=0&a=", status: 400, code: "params"},
		{name: "a=1.5", ep: "j", query: "ttl=0&a=1.5", status: 400, code: "params"},
		{name: "a beyond last seq", ep: "j", query: "ttl=0&a=1000", status: 400, code: "params"},
		{name: "poll param twice", ep: "j", query: "ttl=0&ttl=0", status: 400, code: "params"},

		{name: "code=999", ep: "c", query: "code=999", status: 400, code: "params"},
		{name: "code=1005", ep: "c", query: "code=1005", status: 400, code: "params"},
		{name: "code=2999", ep: "c", query: "code=2999", status: 400, code: "params"},
		{name: "code=5000", ep: "c", query: "code=5000", status: 400, code: "params"},
		{name: "code=abc", ep: "c", query: "code=abc", status: 400, code: "params"},
		{name: "code empty", ep: "c", query: "code=", status: 400, code: "params"},
		{name: "code=-1000", ep: "c", query: "code=-1000", status: 400, code: "params"},
		{name: "reason 124 bytes", ep: "c", query: "code=1000&reason=" + strings.Repeat("r", 124), status: 400, code: "params"},
		{name: "reason 124 bytes in 62 chars", ep: "c", query: "code=1000&reason=" + url.QueryEscape(strings.Repeat("é", 62)), status: 400, code: "params"},
		{name: "reason 126 bytes in 42 chars", ep: "c", query: "code=1000&reason=" + url.QueryEscape(strings.Repeat("€", 42)), status: 400, code: "params"},
		{name: "reason invalid utf-8", ep: "c", query: "code=1000&reason=%FF", status: 400, code: "params"},
		{name: "close param twice", ep: "c", query: "code=1000&code=1000", status: 400, code: "params"},
		{name: "close param in query and body", method: "POST", ep: "c", query: "code=1000", ctype: biForm, body: "code=1000", status: 400, code: "params"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			biBoth(t, func(t *testing.T, cb string) {
				m := r.method
				if m == "" {
					m = http.MethodGet
				}
				a := e.do(t, m, "/"+r.ep+"/"+sock, biWithCB(r.query, cb), r.ctype, r.body)
				biCheck(t, a, cb, r.status, r.code)
			})
		})
	}
}

func TestRelayBadCallback(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	cbs := []struct{ name, raw, cb string }{
		{"empty", "cb=", ""},
		{"call", "cb=" + url.QueryEscape("alert(1)"), "alert(1)"},
		{"leading digit", "cb=9lives", "9lives"},
		{"double dot", "cb=aa..bb", "aa..bb"},
		{"hyphen", "cb=aa-bb", "aa-bb"},
		{"unicode", "cb=" + url.QueryEscape("cbé"), "cbé"},
		{"too long", "cb=" + strings.Repeat("k", 129), strings.Repeat("k", 129)},
		{"twice", "cb=good1&cb=good2", "good"},
		{"malformed", "cb=good1%zz", "good1"},
	}
	for _, ep := range []struct{ name, path, query string }{
		{"send", "/s/" + sock, "t=t&d=x"},
		{"close", "/c/" + sock, "code=1000"},
		{"poll", "/j/" + sock, "ttl=0"},
		{"send unknown socket", "/s/nope", "t=t&d=x"},
		{"send bad params", "/s/" + sock, "t=zz&d=%FF"},
		{"poll bad params", "/j/" + sock, "ttl=-1&ttl=2"},
	} {
		for _, c := range cbs {
			t.Run(ep.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				a := e.do(t, http.MethodGet, ep.path, ep.query+"&"+c.raw, "", "")
				biCheckBadCallback(t, a, c.cb)
			})
		}
	}
	// A bad callback in a POST body is caught too.
	t.Run("send body", func(t *testing.T) {
		t.Parallel()
		a := e.do(t, http.MethodPost, "/s/"+sock, "", biForm, "t=t&d=x&cb=alert%281%29")
		biCheckBadCallback(t, a, "alert(1)")
	})
	// The session was not closed by any of it.
	t.Cleanup(func() {
		if e.st.Relay.Registry().Len() != 1 {
			t.Errorf("%d live sessions, want 1", e.st.Relay.Registry().Len())
		}
	})
}

func TestRelayUnknownSocket(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	for _, id := range []string{"nope", "", sock + "x", sock[:len(sock)-1], strings.Repeat("a", 100), sock + "/x"} {
		for _, ep := range []struct{ name, query string }{
			{"s", "t=t&d=x"},
			{"c", "code=1000"},
			{"j", "ttl=0"},
		} {
			t.Run(ep.name+"/"+id, func(t *testing.T) {
				t.Parallel()
				biBoth(t, func(t *testing.T, cb string) {
					a := e.do(t, http.MethodGet, "/"+ep.name+"/"+id, biWithCB(ep.query, cb), "", "")
					biCheck(t, a, cb, http.StatusForbidden, "socket")
				})
			})
		}
	}
}

func TestRelayMethods(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	rows := []struct{ method, ep, allow string }{
		{http.MethodPut, "s", "GET, POST"},
		{http.MethodDelete, "s", "GET, POST"},
		{http.MethodPut, "c", "GET, POST"},
		{http.MethodPost, "j", "GET"},
		{http.MethodPut, "j", "GET"},
	}
	for _, r := range rows {
		t.Run(r.method+" "+r.ep, func(t *testing.T) {
			t.Parallel()
			biBoth(t, func(t *testing.T, cb string) {
				a := e.do(t, r.method, "/"+r.ep+"/"+sock, biWithCB("", cb), biForm, "t=t&d=x")
				biCheck(t, a, cb, http.StatusMethodNotAllowed, "method")
				if got := a.header.Get("Allow"); got != r.allow {
					t.Errorf("Allow %q, want %q", got, r.allow)
				}
			})
		})
	}
	for _, r := range []struct{ ep, methods string }{{"s", "GET, POST"}, {"c", "GET, POST"}, {"j", "GET"}} {
		t.Run("OPTIONS "+r.ep, func(t *testing.T) {
			t.Parallel()
			a := e.do(t, http.MethodOptions, "/"+r.ep+"/"+sock, "", "", "")
			biCheckCommon(t, a)
			if a.status != http.StatusNoContent || len(a.body) != 0 {
				t.Fatalf("status %d body %q, want 204 without a body", a.status, a.body)
			}
			if got := a.header.Get("Access-Control-Allow-Methods"); got != r.methods {
				t.Errorf("Access-Control-Allow-Methods %q, want %q", got, r.methods)
			}
			if got := a.header.Get("Access-Control-Allow-Headers"); !strings.Contains(got, "Content-Type") {
				t.Errorf("Access-Control-Allow-Headers %q lacks Content-Type", got)
			}
		})
	}
}

func TestRelayBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{Relay: biMaxBody(4096)}, testenv.TargetOptions{})
	sock := e.open(t)
	body := "t=t&d=" + strings.Repeat("x", 8192)
	for _, ep := range []string{"s", "c"} {
		t.Run(ep, func(t *testing.T) {
			t.Parallel()
			biBoth(t, func(t *testing.T, cb string) {
				a := e.do(t, http.MethodPost, "/"+ep+"/"+sock, biWithCB("", cb), biForm, body)
				biCheck(t, a, cb, http.StatusRequestEntityTooLarge, "too_large")
			})
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		t.Parallel()
		a := e.do(t, http.MethodPost, "/s/"+sock, "", biForm, "t=t&d="+strings.Repeat("y", 4096-6))
		biCheck(t, a, "", http.StatusCreated, "")
	})
}

// biSink is a target handler that reads messages and records their
// sizes, never writing back (so nothing fills the session's buffer).
type biSink struct {
	mu    sync.Mutex
	sizes []int
}

func (s *biSink) handle(ctx context.Context, c *websocket.Conn) {
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.sizes = append(s.sizes, len(data))
		s.mu.Unlock()
	}
}

func (s *biSink) got() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

func TestRelayMessageSize(t *testing.T) {
	t.Parallel()
	sink := &biSink{}
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{Handle: sink.handle, ReadLimit: 4 << 20})
	sock := e.open(t)
	const mib = 1 << 20
	text := func(n int) string { return "t=t&d=" + strings.Repeat("a", n) }
	bin := func(n int) string {
		return "t=b&d=" + url.QueryEscape(base64.StdEncoding.EncodeToString(make([]byte, n)))
	}
	steps := []struct {
		name   string
		query  string // GET when set
		body   string // POST otherwise
		status int
		code   string
	}{
		{name: "text exactly 1 MiB", body: text(mib), status: 201},
		{name: "text 1 MiB + 1", body: text(mib + 1), status: 413, code: "too_large"},
		{name: "binary exactly 1 MiB", body: bin(mib), status: 201},
		{name: "binary 1 MiB + 1", body: bin(mib + 1), status: 413, code: "too_large"},
		{name: "binary 1 MiB + 3", body: bin(mib + 3), status: 413, code: "too_large"},
		{name: "first fragment", body: text(600<<10) + "&f=1", status: 201},
		{name: "fragment past the limit", body: text(600<<10) + "&f=1", status: 413, code: "too_large"},
		{name: "the session goes on", query: "t=t&d=ok", status: 201},
	}
	for _, s := range steps {
		var a biAnswer
		if s.query != "" {
			a = e.do(t, http.MethodGet, "/s/"+sock, s.query, "", "")
		} else {
			a = e.do(t, http.MethodPost, "/s/"+sock, "", biForm, s.body)
		}
		t.Run(s.name, func(t *testing.T) { biCheck(t, a, "", s.status, s.code) })
	}
	want := []int{mib, mib, 2}
	testenv.WaitFor(t, 10*time.Second, "the target to get the accepted messages", func() bool { return len(sink.got()) >= len(want) })
	if got := sink.got(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("target got messages of %v bytes, want %v", got, want)
	}
}

func TestRelayAfterClose(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	biCheck(t, e.do(t, http.MethodGet, "/c/"+sock, "code=4000&reason=bye", "", ""), "", http.StatusOK, "")
	biBoth(t, func(t *testing.T, cb string) {
		biCheck(t, e.do(t, http.MethodGet, "/s/"+sock, biWithCB("t=t&d=x", cb), "", ""), cb, http.StatusForbidden, "socket")
		biCheck(t, e.do(t, http.MethodPost, "/s/"+sock, biWithCB("", cb), biForm, "t=t&d=x"), cb, http.StatusForbidden, "socket")
		biCheck(t, e.do(t, http.MethodGet, "/c/"+sock, biWithCB("code=1000", cb), "", ""), cb, http.StatusForbidden, "socket")
	})
	// Within the grace the poll still gets the close message.
	r := biCheck(t, e.do(t, http.MethodGet, "/j/"+sock, "ttl=0&a=0", "", ""), "", http.StatusOK, "")
	if len(r.Messages) != 1 || r.Messages[0].Type != "close" || r.Messages[0].Code != 4000 || r.Messages[0].Reason != "bye" {
		t.Fatalf("poll after close got %+v, want the close message 4000 bye", r.Messages)
	}
}

func TestRelayCloseValid(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	for _, r := range []struct{ name, query string }{
		{"default code", ""},
		{"1000", "code=1000"},
		// 1001 is accepted on purpose: the handler lets polysocket.js
		// report a page unload as "going away".
		{"1001", "code=1001"},
		{"3000", "code=3000"},
		{"4999", "code=4999"},
		{"reason 123 bytes", "code=1000&reason=" + strings.Repeat("r", 123)},
		{"reason 123 bytes in 41 chars", "code=4001&reason=" + url.QueryEscape(strings.Repeat("€", 41))},
		{"empty reason", "code=1000&reason="},
	} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			sock := e.open(t)
			biCheck(t, e.do(t, http.MethodGet, "/c/"+sock, r.query, "", ""), "", http.StatusOK, "")
		})
	}
}

func TestRelaySendWindowEdge(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	biCheck(t, e.do(t, http.MethodGet, "/s/"+sock, "t=t&d=x&n=65", "", ""), "", http.StatusBadRequest, "params")
	biCheck(t, e.do(t, http.MethodGet, "/s/"+sock, "t=t&d=x&n=64", "", ""), "", http.StatusCreated, "")
}

// TestRelayHeldFullIsRetryable: an early send that would take the held
// bytes over MaxHeld is refused with 503 unavailable, not 413: nothing
// is dropped, and the same n succeeds once the gap before it is filled.
func TestRelayHeldFullIsRetryable(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{Session: session.Config{MaxHeld: 8}}, testenv.TargetOptions{})
	sock := e.open(t)
	biCheck(t, e.do(t, http.MethodGet, "/s/"+sock, "t=t&d=early&n=2", "", ""), "", http.StatusCreated, "")
	biCheck(t, e.do(t, http.MethodGet, "/s/"+sock, "t=t&d=later&n=3", "", ""), "", http.StatusServiceUnavailable, "unavailable")
	biCheck(t, e.do(t, http.MethodGet, "/s/"+sock, "t=t&d=first&n=1", "", ""), "", http.StatusCreated, "")
	biCheck(t, e.do(t, http.MethodGet, "/s/"+sock, "t=t&d=later&n=3", "", ""), "", http.StatusCreated, "")
	got := e.texts(t, sock, 3)
	if strings.Join(got, ",") != "first,early,later" {
		t.Fatalf("echoes %q, want first, early, later", got)
	}
}

func TestRelayUnnumberedSends(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	for _, d := range []string{"one", "two", "three"} {
		biCheck(t, e.do(t, http.MethodGet, "/s/"+sock, "t=t&d="+d, "", ""), "", http.StatusCreated, "")
	}
	got := e.texts(t, sock, 3)
	if strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("echoes %q, want one, two, three in order", got)
	}
}

func TestRelayOversizedURL(t *testing.T) {
	t.Parallel()
	e := newBIEnv(t, testenv.StackOptions{}, testenv.TargetOptions{})
	sock := e.open(t)
	// Served with the product's 64 KiB request line and header limit.
	srv := httptest.NewUnstartedServer(e.st.Config.Handler)
	srv.Config.MaxHeaderBytes = 64 << 10
	srv.Start()
	t.Cleanup(srv.Close)
	e2 := &biEnv{st: &testenv.Stack{Server: srv}, tg: e.tg, c: e.c}
	host, _ := e.hosts.Load(sock)
	e2.hosts.Store(sock, host)
	a := e2.do(t, http.MethodGet, "/s/"+sock, "t=t&d="+strings.Repeat("z", 80<<10), "", "")
	if a.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", a.status)
	}
	biCheck(t, e2.do(t, http.MethodGet, "/s/"+sock, "t=t&d="+strings.Repeat("z", 32<<10), "", ""), "", http.StatusCreated, "")
}

// texts polls sock (acking) until it has n text messages or ten polls
// went by, and returns their data.
func (e *biEnv) texts(t *testing.T, sock string, n int) []string {
	t.Helper()
	var got []string
	var ack int64
	for i := 0; i < 10 && len(got) < n; i++ {
		r := biCheck(t, e.do(t, http.MethodGet, "/j/"+sock, "ttl=2000&a="+biItoa(ack), "", ""), "", http.StatusOK, "")
		for _, m := range r.Messages {
			if m.Type == "text" {
				got = append(got, m.Data)
				ack = m.Seq
			}
		}
	}
	return got
}

func biMaxBody(n int64) relay.Config { return relay.Config{MaxBody: n} }

func biItoa(n int64) string { return strconv.FormatInt(n, 10) }

func (a biAnswer) std() testenv.Answer {
	return testenv.Answer{Status: a.status, Header: a.header, Body: a.body}
}
