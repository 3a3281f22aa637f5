package browser

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polysocket/polysocket/client"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/session"
)

// seen is one request the front proxy passed on.
type seen struct {
	Method, Host, Path, Query string
	// Status is the answer's status; 0 while in flight or when the front
	// hung up instead.
	Status int
}

// front is a small reverse proxy between the browser and a stack. The
// browser only ever talks to it (the page, /create and every session
// subdomain), so it sees every request the stack would see, and it can
// break the network on purpose: drop one /j response after the relay
// wrote it, or black a session's host out entirely.
type front struct {
	srv     *httptest.Server
	backend string // the stack's base URL
	client  *http.Client
	tr      *http.Transport

	mu       sync.Mutex
	reqs     []seen
	dropJ    int             // /j responses with messages still to drop
	dropS    int             // /s responses still to drop
	sEvery   int             // drop every sEvery-th /s response
	sSeen    int             // /s requests answered by the relay
	sNow     int             // /s requests being forwarded
	sMax     int             // the most /s requests forwarded at once
	failN    map[string]int  // /s answers still to replace by a 502, per n
	dropped  []string        // bodies of the dropped responses
	blackout string          // a host whose requests are cut; "" for none
	blackSub bool            // cut every request for a session subdomain
	inflight map[*int]func() // cancels for requests being forwarded
	hosts    map[*int]string // their hosts
	cut      map[string]int  // requests cut by blackout, per host
}

// newFront makes a front proxy whose listener exists (so its port can go
// into the relay's FQDN) but which serves only after start.
func newFront(t *testing.T) *front {
	t.Helper()
	f := &front{inflight: map[*int]func(){}, hosts: map[*int]string{}, cut: map[string]int{}}
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.Config.ReadHeaderTimeout = 10 * time.Second
	return f
}

// port is the front's port.
func (f *front) port() string {
	_, p, _ := net.SplitHostPort(f.srv.Listener.Addr().String())
	return p
}

// start forwards to backend from now on; the front stops at cleanup.
func (f *front) start(t *testing.T, backend string) {
	t.Helper()
	f.backend = backend
	f.tr = &http.Transport{MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: 90 * time.Second}
	f.client = &http.Client{Transport: f.tr, Timeout: 90 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	f.srv.Start()
	t.Cleanup(func() {
		// Close waits for the handlers, whose backend requests end with
		// their client connections; then no pooled connection is busy.
		f.srv.Close()
		f.tr.CloseIdleConnections()
	})
}

// requests returns the requests seen so far.
func (f *front) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

// dropOneJ makes the front cut the connection of the next /j response
// that carries messages, after the relay has written it.
func (f *front) dropOneJ() {
	f.mu.Lock()
	f.dropJ = 1
	f.mu.Unlock()
}

// dropSends makes the front replace every every-th /s response by a 502,
// count times, after the relay has answered it: the send was applied,
// but the browser sees a failure.
func (f *front) dropSends(every, count int) {
	f.mu.Lock()
	f.sEvery, f.dropS = every, count
	f.mu.Unlock()
}

// failSend makes the front answer the send numbered n with a 502, times
// times (first try and retries alike), without passing it on: the relay
// never sees it, and holds the sends after it.
func (f *front) failSend(n string, times int) {
	f.mu.Lock()
	f.failN = map[string]int{n: times}
	f.mu.Unlock()
}

// maxSends is the most /s requests the front forwarded at once.
func (f *front) maxSends() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sMax
}

// droppedBodies returns the /j responses dropped so far.
func (f *front) droppedBodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dropped...)
}

// setBlackout cuts every request for host (and ends those in flight, so
// the relay sees its poll end) until called with "".
func (f *front) setBlackout(host string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blackout = host
	if host == "" {
		return
	}
	for k, cancel := range f.inflight {
		if f.hosts[k] == host {
			cancel()
		}
	}
}

// blackoutSessions cuts every request for a session's host (a
// subdomain) from now on, as a proxy or resolver that cannot reach them.
func (f *front) blackoutSessions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blackSub = true
}

// cutCount is how many requests for host the blackout cut.
func (f *front) cutCount(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[host]
}

// hangUp closes the client connection without an answer, as a broken
// network would.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	key := new(int)
	isSend := strings.HasPrefix(r.URL.Path, "/s/")
	f.mu.Lock()
	idx := len(f.reqs)
	f.reqs = append(f.reqs, seen{Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery})
	if isSend {
		f.sNow++
		f.sMax = max(f.sMax, f.sNow)
		defer func() {
			f.mu.Lock()
			f.sNow--
			f.mu.Unlock()
		}()
	}
	black := (f.blackout != "" && r.Host == f.blackout) || (f.blackSub && strings.Contains(r.Host, "."))
	if black {
		f.cut[r.Host]++
	} else {
		f.inflight[key] = cancel
		f.hosts[key] = r.Host
	}
	f.mu.Unlock()
	if black {
		hangUp(w)
		return
	}
	defer func() {
		f.mu.Lock()
		delete(f.inflight, key)
		delete(f.hosts, key)
		f.mu.Unlock()
	}()

	var body io.Reader
	if r.ContentLength != 0 {
		body = r.Body
	}
	n := ""
	if isSend {
		// Small; read whole so a retry's n (in a POST body) is seen.
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			hangUp(w)
			return
		}
		body = bytes.NewReader(b)
		q, _ := url.ParseQuery(r.URL.RawQuery)
		if bq, err := url.ParseQuery(string(b)); err == nil && bq.Has("n") {
			q = bq
		}
		n = q.Get("n")
		if f.takeSendFail(n) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, f.backend+r.URL.RequestURI(), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	out.ContentLength = r.ContentLength
	resp, err := f.client.Do(out)
	if err != nil {
		hangUp(w)
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || ctx.Err() != nil {
		hangUp(w)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/j/") && bytes.Contains(b, []byte(`"seq":`)) && f.takeDrop(b) {
		hangUp(w)
		return
	}
	if isSend && f.takeSendDrop() {
		// A status, not a hang-up: Chromium silently repeats a GET whose
		// kept-alive connection closes before any answer, so the library
		// would never see the failure.
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	f.mu.Lock()
	f.reqs[idx].Status = resp.StatusCode
	f.mu.Unlock()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(b)
}

// takeDrop reports whether this /j response is to be dropped.
func (f *front) takeDrop(body []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropJ == 0 {
		return false
	}
	f.dropJ--
	f.dropped = append(f.dropped, string(body))
	return true
}

// takeSendFail reports whether send n is to fail without reaching the
// relay.
func (f *front) takeSendFail(n string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failN[n] == 0 {
		return false
	}
	f.failN[n]--
	return true
}

// takeSendDrop reports whether this /s response is to be dropped.
func (f *front) takeSendDrop() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sSeen++
	if f.dropS == 0 || f.sSeen%f.sEvery != 0 {
		return false
	}
	f.dropS--
	return true
}

// env is a stack behind a front proxy, serving the test page and the
// library, and a tab on the page.
type env struct {
	st    *testenv.Stack
	front *front
	tab   *tab
	base  string // the page's origin, http://localhost:{front port}
}

// newEnv starts a stack whose relay names sessions {uniq}.localhost:{front
// port} (Chromium resolves *.localhost to loopback), and opens
// /t.html?mode=mode in a new tab.
func newEnv(t *testing.T, b Browser, mode string, scfg session.Config, more ...func(*testenv.StackOptions)) *env {
	t.Helper()
	e := startEnv(t, scfg, more...)
	e.openTab(t, b, mode)
	return e
}

// startEnv is newEnv without the tab, for tests that put something
// between the browser and the front first (a proxy).
func startEnv(t *testing.T, scfg session.Config, more ...func(*testenv.StackOptions)) *env {
	t.Helper()
	f := newFront(t)
	fqdn := "localhost:" + f.port()
	opts := testenv.StackOptions{
		Mount: func(mux *http.ServeMux) {
			mux.Handle("/polysocket.js", client.Handler())
			mux.HandleFunc("/t.html", servePage)
		},
		Session: scfg,
	}
	opts.Relay.FQDN = fqdn
	for _, f := range more {
		f(&opts)
	}
	st := testenv.NewStack(t, opts)
	f.start(t, st.URL)
	return &env{st: st, front: f, base: "http://" + fqdn}
}

// openTab opens /t.html?mode=mode in a new tab.
func (e *env) openTab(t *testing.T, b Browser, mode string) {
	t.Helper()
	e.tab = newTab(t, b)
	e.load(mode)
}

// load (re)loads the test page in the tab.
func (e *env) load(mode string) {
	e.tab.t.Helper()
	e.tab.navigate(e.base + "/t.html?mode=" + mode)
	e.tab.poll("the harness", 10*time.Second, "window.T && window.PolySocket && true", nil)
}
