package browser

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/session"
)

// TestBrowser runs every browser case in every engine (Chromium, then
// Firefox): one browser per engine, a new tab (and a new stack) per case.
func TestBrowser(t *testing.T) {
	runCases(t, launch{}, []browserCase{
		{"echo", testEcho},
		{"burst", testBurst},
		{"dropped-sends", testDroppedSends},
		{"stuck-send", testStuckSend},
		{"ten-sessions", testTenSessions},
		{"close-by-client", testCloseByClient},
		{"close-by-target", testCloseByTarget},
		{"relay-ends-session", testRelayEndsSession},
		{"relay-lost-session", testRelayLostSession},
		{"dropped-poll", testDroppedPoll},
		{"page-unload", testPageUnload},
		{"native", testNative},
		{"native-fails", testNativeFails},
		{"hanging-upgrade", testHangingUpgrade},
		{"nginx", testNginx},
		{"session-host-unreachable", testSessionHostUnreachable},
		{"time-to-open", testTimeToOpen},
		{"demo", testDemo},
	})
}

// open opens a PolySocket to target on the page and waits for its open
// event; it returns the socket's id and that event.
func (e *env) open(target string, opts string) (int, event) {
	e.tab.t.Helper()
	var id int
	e.tab.eval(fmt.Sprintf("T.open(%s, %s)", js(target), opts), &id)
	evs := e.tab.events(id, 1, 20*time.Second)
	if evs[0].Type != "open" {
		e.tab.t.Fatalf("socket %d: first event %v, want open", id, evs[0])
	}
	return id, evs[0]
}

// openRelay is open with the transport checked to be the relay.
func (e *env) openRelay(target string) int {
	e.tab.t.Helper()
	id, ev := e.open(target, `{binaryType: 'arraybuffer'}`)
	if ev.Transport != "relay" || !strings.HasSuffix(ev.Base, ".localhost:"+e.front.port()) {
		e.tab.t.Fatalf("open: transport %q base %q; want the relay on a *.localhost:%s subdomain", ev.Transport, ev.Base, e.front.port())
	}
	return id
}

func wantText(t *testing.T, what string, ev event, s string) {
	t.Helper()
	sum, n := sumText(s)
	if ev.Type != "message" || ev.Kind != "text" || ev.Len != n || ev.Sum != sum {
		t.Fatalf("%s: got %v (len %d sum %x), want text of %d units, sum %x", what, ev, ev.Len, ev.Sum, n, sum)
	}
}

func wantBytes(t *testing.T, what string, ev event, kind string, b []byte) {
	t.Helper()
	if ev.Type != "message" || ev.Kind != kind || ev.Len != len(b) || ev.Sum != sumBytes(b) {
		t.Fatalf("%s: got %v (len %d sum %x), want %s of %d bytes, sum %x", what, ev, ev.Len, ev.Sum, kind, len(b), sumBytes(b))
	}
}

// testEcho sends every kind of message through one relay session and
// checks each echo.
func testEcho(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	var hasWS bool
	e.tab.eval("'WebSocket' in window && !!window.WebSocket", &hasWS)
	if hasWS {
		t.Fatal("the page still has window.WebSocket")
	}
	id := e.openRelay(tg.URL)
	n := 1 // events so far
	next := func(what, send string) event {
		t.Helper()
		e.tab.eval(send, nil)
		n++
		evs := e.tab.events(id, n, 60*time.Second)
		if len(evs) != n {
			t.Fatalf("%s: events %s", what, eventsString(evs))
		}
		return evs[n-1]
	}
	texts := []struct{ name, s string }{
		{"text", "hello, polysocket"},
		{"unicode", "line\u2028sep\u2029para 😀 𝄞 é ü 中文 <\"q\"> & \\ %20 + /**/"},
		{"empty", ""},
		{"long-unicode", strings.Repeat("é😀\u2028x", 10000)},
	}
	for _, c := range texts {
		t.Run(c.name, func(t *testing.T) {
			wantText(t, c.name, next(c.name, fmt.Sprintf("T.send(%d, %s)", id, js(c.s))), c.s)
		})
	}
	t.Run("arraybuffer", func(t *testing.T) {
		wantBytes(t, "arraybuffer", next("arraybuffer", fmt.Sprintf("T.sendBytes(%d, 1000, 'ab')", id)), "arraybuffer", pattern(1000))
	})
	t.Run("dataview", func(t *testing.T) {
		wantBytes(t, "dataview", next("dataview", fmt.Sprintf("T.sendBytes(%d, 3001, 'view')", id)), "arraybuffer", pattern(3001))
	})
	t.Run("blob", func(t *testing.T) {
		e.tab.eval(fmt.Sprintf("T.socks[%d].ps.binaryType = 'blob'", id), nil)
		wantBytes(t, "blob", next("blob", fmt.Sprintf("T.sendBytes(%d, 70000, 'blob')", id)), "blob", pattern(70000))
		e.tab.eval(fmt.Sprintf("T.socks[%d].ps.binaryType = 'arraybuffer'", id), nil)
	})
	t.Run("1MiB-text", func(t *testing.T) {
		unit := "0123456789abcdef"
		want := strings.Repeat(unit, (1<<20)/len(unit))
		wantText(t, "1 MiB text", next("1 MiB text", fmt.Sprintf("T.sendRepeat(%d, %s, %d)", id, js(unit), (1<<20)/len(unit))), want)
	})
	t.Run("1MiB-binary", func(t *testing.T) {
		wantBytes(t, "1 MiB binary", next("1 MiB binary", fmt.Sprintf("T.sendBytes(%d, %d, 'ab')", id, 1<<20)), "arraybuffer", pattern(1<<20))
	})
	var st struct {
		ReadyState     int `json:"readyState"`
		BufferedAmount int `json:"bufferedAmount"`
	}
	e.tab.eval(fmt.Sprintf("T.state(%d)", id), &st)
	if st.ReadyState != 1 || st.BufferedAmount != 0 {
		t.Fatalf("after the echoes: readyState %d bufferedAmount %d, want 1 and 0", st.ReadyState, st.BufferedAmount)
	}
}

// wantNumbered checks that evs (after the open) are exactly m0..m{n-1}.
func wantNumbered(t *testing.T, evs []event, n int) {
	t.Helper()
	msgs := evs[1:]
	if len(msgs) != n {
		t.Fatalf("%d messages after open, want %d: %s", len(msgs), n, eventsString(msgs))
	}
	for i, ev := range msgs {
		want := fmt.Sprintf("m%d", i)
		if ev.Type != "message" || ev.Data == nil || *ev.Data != want {
			t.Fatalf("message %d is %v, want %q (lost, duplicated or out of order)", i, ev, want)
		}
	}
}

// maxFlight is polysocket.js's MAX_FLIGHT: whole small messages in
// flight at once.
const maxFlight = 4

// testBurst sends 1,000 numbered messages at once; the echoes must come
// back complete and in order, with the sends pipelined.
func testBurst(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	id := e.openRelay(tg.URL)
	start := time.Now()
	e.tab.eval(fmt.Sprintf("T.burst(%d, 1000)", id), nil)
	evs := e.tab.events(id, 1001, 80*time.Second)
	t.Logf("1,000 sends echoed in %v; at most %d sends in flight", time.Since(start).Round(10*time.Millisecond), e.front.maxSends())
	wantNumbered(t, evs, 1000)
	wantNoResends(t, e)
	if m := e.front.maxSends(); m < 2 || m > maxFlight {
		t.Fatalf("at most %d sends in flight at once, want 2…%d", m, maxFlight)
	}
	var st struct {
		BufferedAmount int `json:"bufferedAmount"`
	}
	e.tab.eval(fmt.Sprintf("T.state(%d)", id), &st)
	if st.BufferedAmount != 0 {
		t.Fatalf("bufferedAmount %d after every echo came back, want 0", st.BufferedAmount)
	}
}

// testTenSessions opens ten sessions at once; each must get its own
// subdomain and its own echoes.
func testTenSessions(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	e.tab.eval(fmt.Sprintf("[...Array(10).keys()].map(() => T.open(%s, {}))", js(tg.URL)), nil)
	bases := map[string]bool{}
	for i := 0; i < 10; i++ {
		evs := e.tab.events(i, 1, 30*time.Second)
		if evs[0].Type != "open" || evs[0].Transport != "relay" {
			t.Fatalf("socket %d: %s", i, eventsString(evs))
		}
		bases[evs[0].Base] = true
	}
	if len(bases) != 10 {
		t.Fatalf("10 sessions share relay hosts: %v", bases)
	}
	for i := 0; i < 10; i++ {
		e.tab.eval(fmt.Sprintf("T.send(%d, 'from socket %d')", i, i), nil)
	}
	for i := 0; i < 10; i++ {
		evs := e.tab.events(i, 2, 30*time.Second)
		if len(evs) != 2 {
			t.Fatalf("socket %d: %s", i, eventsString(evs))
		}
		wantText(t, fmt.Sprintf("socket %d", i), evs[1], fmt.Sprintf("from socket %d", i))
	}
	wantNoResends(t, e)
	// The relay saw the polls on ten different subdomains.
	hosts := map[string]bool{}
	for _, r := range e.front.requests() {
		if strings.HasPrefix(r.Path, "/j/") {
			hosts[r.Host] = true
		}
	}
	if len(hosts) != 10 {
		t.Fatalf("polls came on %d hosts, want 10: %v", len(hosts), hosts)
	}
	for h := range hosts {
		if !bases["http://"+h] {
			t.Fatalf("poll host %s is not one of the sessions' %v", h, bases)
		}
	}
	if n := e.st.Relay.Registry().Len(); n != 10 {
		t.Fatalf("the relay has %d live sessions, want 10", n)
	}
}

// closeRecorder is a target handler that echoes and reports the close
// frame ending the connection.
func closeRecorder(ch chan<- websocket.CloseError) func(context.Context, *websocket.Conn) {
	return func(ctx context.Context, c *websocket.Conn) {
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					select {
					case ch <- ce:
					default:
					}
				}
				return
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
	}
}

func wantClose(t *testing.T, evs []event, code int, reason string, clean bool) {
	t.Helper()
	last := evs[len(evs)-1]
	if last.Type != "close" || last.Code != code || last.Reason != reason || last.WasClean != clean {
		t.Fatalf("events %s; want a close %d %q wasClean=%v last", eventsString(evs), code, reason, clean)
	}
	if clean {
		for _, ev := range evs {
			if ev.Type == "error" {
				t.Fatalf("clean close with an error event: %s", eventsString(evs))
			}
		}
	} else if evs[len(evs)-2].Type != "error" {
		t.Fatalf("unclean close without an error event before it: %s", eventsString(evs))
	}
}

// testCloseByClient: the page's close(4002) reaches the target with its
// code and reason, and the page's close event is clean.
func testCloseByClient(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	closes := make(chan websocket.CloseError, 1)
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: closeRecorder(closes)})
	id := e.openRelay(tg.URL)
	e.tab.eval(fmt.Sprintf("T.send(%d, 'before close'); T.close(%d, 4002, 'client bye')", id, id), nil)
	select {
	case ce := <-closes:
		if ce.Code != 4002 || ce.Reason != "client bye" {
			t.Fatalf("target got close %d %q, want 4002 \"client bye\"", ce.Code, ce.Reason)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the target got no close frame")
	}
	e.tab.poll("the close event", 20*time.Second, fmt.Sprintf("T.socks[%d].ps.readyState === 3", id), nil)
	// The echo of the message sent before close may or may not beat the
	// close; the close event must be clean either way.
	wantClose(t, e.tab.snapshot(id), 4002, "client bye", true)
}

// testCloseByTarget: a target's close(4001) reaches onclose with its
// code and reason, cleanly.
func testCloseByTarget(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) {
		if _, _, err := c.Read(ctx); err != nil {
			return
		}
		_ = c.Close(4001, "target bye")
	}})
	id := e.openRelay(tg.URL)
	e.tab.eval(fmt.Sprintf("T.send(%d, 'please close')", id), nil)
	e.tab.poll("the close event", 20*time.Second, fmt.Sprintf("T.socks[%d].ps.readyState === 3", id), nil)
	evs := e.tab.snapshot(id)
	if len(evs) != 2 {
		t.Fatalf("events %s, want open and close", eventsString(evs))
	}
	wantClose(t, evs, 4001, "target bye", true)
}

// testRelayEndsSession: the target vanishes without a close frame, so the
// relay ends the session with 1006; the page sees close 1006, not clean,
// and no error event (as with a native WebSocket: see like-native).
func testRelayEndsSession(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) {
		_, _, _ = c.Read(ctx)
		_ = c.CloseNow() // no close frame: the TCP connection just ends
	}})
	id := e.openRelay(tg.URL)
	e.tab.eval(fmt.Sprintf("T.send(%d, 'vanish')", id), nil)
	e.tab.poll("the close event", 20*time.Second, fmt.Sprintf("T.socks[%d].ps.readyState === 3", id), nil)
	if got := eventsString(e.tab.snapshot(id)); got != "open(relay), close(1006 \"\" clean=false)" {
		t.Fatalf("events %s, want open and close 1006 only", got)
	}
}

// testRelayLostSession: the relay forgets a session while the page
// cannot reach it (the front blacks the session's host out until the
// relay's idle timeout and close grace have passed). When the page gets
// through again the relay answers its poll with 403 unknown socket; the
// page must report close 1006.
//
// A poll the relay had already parked when the blackout began keeps the
// session active until its TTL (a parked poll does not see its client
// go), so polls are held at most 2 s here: the session then idles out
// within seconds. The test waits for that parked poll before the
// blackout (before, a poll that got through first made it flaky).
func testRelayLostSession(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{IdleTimeout: 1500 * time.Millisecond, CloseGrace: 500 * time.Millisecond},
		func(o *testenv.StackOptions) { o.Relay.DefaultTTL, o.Relay.MaxTTL = 2*time.Second, 2*time.Second })
	closes := make(chan websocket.CloseError, 1)
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: closeRecorder(closes)})
	id := e.openRelay(tg.URL)
	evs := e.tab.snapshot(id)
	host := strings.TrimPrefix(evs[0].Base, "http://")
	// The harder case, every time: the relay holds the page's poll,
	// parked, when the blackout begins.
	testenv.WaitFor(t, 10*time.Second, "the relay to park the page's poll", func() bool {
		parked := false
		e.st.Relay.Registry().Range(func(s *session.Session) bool { parked = s.Parked(); return false })
		return parked
	})
	start := time.Now()
	e.front.setBlackout(host)
	// The relay ends the idle session (the target hears 1001) and then
	// forgets it.
	select {
	case ce := <-closes:
		if ce.Code != websocket.StatusGoingAway {
			t.Fatalf("target got close %d %q, want 1001", ce.Code, ce.Reason)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the relay did not end the idle session")
	}
	testenv.WaitFor(t, 10*time.Second, "the relay to forget the session", func() bool {
		return e.st.Relay.Registry().Len() == 0 && registryEmpty(e)
	})
	if e.front.cutCount(host) == 0 {
		t.Fatal("the blackout cut no request")
	}
	e.front.setBlackout("")
	e.tab.poll("the close event", 45*time.Second, fmt.Sprintf("T.socks[%d].ps.readyState === 3", id), nil)
	evs = e.tab.snapshot(id)
	wantClose(t, evs, 1006, "PolySocket: session gone", false)
	for _, ev := range evs {
		if ev.Type == "message" {
			t.Fatalf("the page got a message from a lost session: %s", eventsString(evs))
		}
	}
	// The page learned it from the relay's 403, read by a plain-JSON
	// poll (a script tag cannot see a status), not by giving up.
	probed := false
	for _, r := range e.front.requests() {
		q, _ := url.ParseQuery(r.Query)
		probed = probed || (r.Host == host && strings.HasPrefix(r.Path, "/j/") && !q.Has("cb") && r.Status == 403)
	}
	if !probed {
		t.Fatal("no status probe of /j answered 403")
	}
	t.Logf("close 1006 reached the page %v after the blackout began", time.Since(start).Round(100*time.Millisecond))
}

// registryEmpty reports whether the relay's registry holds no session at
// all, live or ended.
func registryEmpty(e *env) bool {
	n := 0
	e.st.Relay.Registry().Range(func(*session.Session) bool { n++; return true })
	return n == 0
}

// testDroppedPoll: the front cuts the connection of one /j response that
// carries messages, after the relay wrote it. The relay re-delivers what
// was not acked, so nothing is lost or duplicated.
func testDroppedPoll(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	id := e.openRelay(tg.URL)
	e.front.dropOneJ()
	e.tab.eval(fmt.Sprintf("T.burst(%d, 100)", id), nil)
	evs := e.tab.events(id, 101, 60*time.Second)
	wantNumbered(t, evs, 100)
	dropped := e.front.droppedBodies()
	if len(dropped) != 1 {
		t.Fatalf("%d /j responses dropped, want 1", len(dropped))
	}
	if !strings.Contains(dropped[0], `"m0"`) {
		t.Logf("dropped response: %s", short(dropped[0]))
	}
}

// testDroppedSends: the front answers every 20th /s with a 502, after
// the relay applied the send. The library retries each
// with the same n while later sends are in flight; the relay applies
// each once, in order.
func testDroppedSends(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	id := e.openRelay(tg.URL)
	e.front.dropSends(20, 5)
	e.tab.eval(fmt.Sprintf("T.burst(%d, 200)", id), nil)
	evs := e.tab.events(id, 201, 60*time.Second)
	wantNumbered(t, evs, 200)
	sent := map[string]int{}
	for _, r := range e.front.requests() {
		if strings.HasPrefix(r.Path, "/s/") {
			q, _ := url.ParseQuery(r.Query)
			if r.Method == "POST" {
				q = nil // a retry's parameters are in its body
			}
			sent[q.Get("n")]++
		}
	}
	if retries := sent[""]; retries < 5 {
		t.Fatalf("%d sends retried, want at least the 5 whose answers were lost", retries)
	}
	if m := e.front.maxSends(); m < 2 {
		t.Fatalf("at most %d sends in flight at once, want pipelining", m)
	}
}

// testStuckSend: send 10 fails four times before reaching the relay
// (about 4 s of retries with backoff) while 300 more wait. The library sends nothing
// new while it retries, so no send runs past the relay's window of 64
// (a 400 that would drop it); all arrive once, in order.
func testStuckSend(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	id := e.openRelay(tg.URL)
	e.front.failSend("10", 4)
	e.tab.eval(fmt.Sprintf("T.burst(%d, 300)", id), nil)
	evs := e.tab.events(id, 301, 60*time.Second)
	wantNumbered(t, evs, 300)
	for _, r := range e.front.requests() {
		if strings.HasPrefix(r.Path, "/s/") && r.Status != 0 && r.Status != http.StatusCreated {
			t.Fatalf("a send was answered %d: %s %s?%s", r.Status, r.Method, r.Path, short(r.Query))
		}
	}
}

// wantNoResends checks that every send reached the relay on its first
// try: no /s request repeated an n. A repeat means the browser held a
// request back until the library's send timeout (as Chromium does with
// low-priority requests beyond ten in flight per page) or the network
// failed it.
func wantNoResends(t *testing.T, e *env) {
	t.Helper()
	seenN := map[string]bool{}
	for _, r := range e.front.requests() {
		if !strings.HasPrefix(r.Path, "/s/") {
			continue
		}
		q, _ := url.ParseQuery(r.Query)
		if r.Method != "GET" || q.Get("n") == "" {
			t.Fatalf("a send was retried (or too big for a GET): %s %s%s?%s", r.Method, r.Host, r.Path, short(r.Query))
		}
		k := r.Path + " n=" + q.Get("n")
		if seenN[k] {
			t.Fatalf("send %s was sent twice", k)
		}
		seenN[k] = true
	}
}

// testPageUnload: leaving the page closes its relay sessions with 1001
// (a beacon to /c), so the target learns at once rather than after the
// relay's idle timeout.
func testPageUnload(t *testing.T, b Browser) {
	e := newEnv(t, b, "none", session.Config{})
	closes := make(chan websocket.CloseError, 1)
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: closeRecorder(closes)})
	e.openRelay(tg.URL)
	// Another page of the site, as a person would go on: Firefox may end
	// the page's process at once for about:blank, beacon and all.
	e.tab.navigate(e.base + "/t.html?mode=none&next=1")
	select {
	case ce := <-closes:
		if ce.Code != websocket.StatusGoingAway {
			t.Fatalf("target got close %d %q, want 1001", ce.Code, ce.Reason)
		}
	case <-time.After(10 * time.Second): // well below the 30 s idle timeout
		for _, r := range e.front.requests() {
			t.Logf("%s %s%s?%s -> %d", r.Method, r.Host, r.Path, short(r.Query), r.Status)
		}
		t.Fatal("the target got no close frame after the page left")
	}
}

// createCalls returns the /create requests the front saw.
func createCalls(e *env) []url.Values {
	var out []url.Values
	for _, r := range e.front.requests() {
		if r.Path == "/create" {
			q, _ := url.ParseQuery(r.Query)
			out = append(out, q)
		}
	}
	return out
}

// testNative: with WebSocket available the library uses it and never
// calls /create; forcePolyfill uses the relay and says why=forced.
func testNative(t *testing.T, b Browser) {
	e := newEnv(t, b, "native", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	id, ev := e.open(tg.URL, `{binaryType: 'arraybuffer'}`)
	if ev.Transport != "websocket" {
		t.Fatalf("transport %q, want websocket", ev.Transport)
	}
	e.tab.eval(fmt.Sprintf("T.send(%d, 'native hello'); T.sendBytes(%d, 5000, 'ab')", id, id), nil)
	evs := e.tab.events(id, 3, 20*time.Second)
	wantText(t, "native text", evs[1], "native hello")
	wantBytes(t, "native binary", evs[2], "arraybuffer", pattern(5000))
	if c := createCalls(e); len(c) != 0 {
		t.Fatalf("the native socket called /create: %v", c)
	}
	if tg.Conns() != 1 {
		t.Fatalf("target has %d connections, want 1", tg.Conns())
	}
	e.tab.eval(fmt.Sprintf("T.close(%d, 1000, 'done')", id), nil)
	e.tab.poll("the native close", 10*time.Second, fmt.Sprintf("T.socks[%d].ps.readyState === 3", id), nil)
	wantClose(t, e.tab.snapshot(id), 1000, "done", true)

	id2, ev2 := e.open(tg.URL, `{forcePolyfill: true}`)
	if ev2.Transport != "relay" {
		t.Fatalf("forced: transport %q, want relay", ev2.Transport)
	}
	e.tab.eval(fmt.Sprintf("T.send(%d, 'forced hello')", id2), nil)
	wantText(t, "forced text", e.tab.events(id2, 2, 20*time.Second)[1], "forced hello")
	c := createCalls(e)
	if len(c) != 1 || c[0].Get("why") != "forced" {
		t.Fatalf("/create calls %v, want one with why=forced", c)
	}
}

// testNativeFails: the native WebSocket fails before opening; the
// library falls back to the relay by itself, tells /create why=failed,
// and the page sees exactly one open. The next socket to that origin
// goes straight to the relay (why=remembered); with rememberFallback:
// false the native WebSocket is tried again.
func testNativeFails(t *testing.T, b Browser) {
	e := newEnv(t, b, "fail", session.Config{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	id, ev := e.open(tg.URL, `{}`)
	if ev.Transport != "relay" {
		t.Fatalf("transport %q, want relay", ev.Transport)
	}
	e.tab.eval(fmt.Sprintf("T.send(%d, 'fallback hello')", id), nil)
	wantText(t, "fallback text", e.tab.events(id, 2, 20*time.Second)[1], "fallback hello")
	var fakes int
	e.tab.eval("window.fakeCalls", &fakes)
	if fakes != 1 {
		t.Fatalf("the native WebSocket was tried %d times, want 1", fakes)
	}
	c := createCalls(e)
	if len(c) != 1 || c[0].Get("why") != "failed" {
		t.Fatalf("/create calls %v, want one with why=failed", c)
	}
	opens := 0
	for _, ev := range e.tab.snapshot(id) {
		if ev.Type == "open" {
			opens++
		}
		if ev.Type == "error" || ev.Type == "close" {
			t.Fatalf("the native failure leaked to the page: %s", eventsString(e.tab.snapshot(id)))
		}
	}
	if opens != 1 {
		t.Fatalf("%d open events, want exactly 1", opens)
	}

	id2, ev2 := e.open(tg.URL, `{}`)
	e.tab.eval("window.fakeCalls", &fakes)
	if ev2.Transport != "relay" || fakes != 1 {
		t.Fatalf("second socket: transport %q, native tried %d times; want the relay, tried once in all", ev2.Transport, fakes)
	}
	wantWhys(t, e, "failed", "remembered")
	e.tab.eval(fmt.Sprintf("T.send(%d, 'remembered hello')", id2), nil)
	wantText(t, "remembered text", e.tab.events(id2, 2, 20*time.Second)[1], "remembered hello")

	e.open(tg.URL, `{rememberFallback: false}`)
	e.tab.eval("window.fakeCalls", &fakes)
	if fakes != 2 {
		t.Fatalf("rememberFallback: false: native tried %d times in all, want 2", fakes)
	}
	wantWhys(t, e, "failed", "remembered", "failed")
}
