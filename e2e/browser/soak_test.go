package browser

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/client"
	"github.com/polysocket/polysocket/internal/faultproxy"
	"github.com/polysocket/polysocket/internal/soaktarget"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/relay"
)

// Sizes of the browser soak (SOAK_SEED replays a seed).
const (
	browserSoakSessions = 5
	browserSoakMessages = 200 // each way
	browserSoakWait     = 80 * time.Second
)

// TestBrowserSoak runs the soak of e2e/soak through the real browser
// library: polysocket.js on the relay transport, in each engine,
// against a relay behind a fault proxy on the client hop. Every message
// must reach onmessage once and in order, every send the target once
// and in order, bufferedAmount must come back to 0, and every session
// must end with its close.
func TestBrowserSoak(t *testing.T) {
	runCases(t, launch{}, []browserCase{{"soak", testBrowserSoak}})
}

// soakState is what the soak page reports of one socket.
type soakState struct {
	ID       int      `json:"id"`
	Echoes   int      `json:"echoes"`
	Pushes   int      `json:"pushes"`
	Bad      []string `json:"bad"`
	Buffered int      `json:"buffered"` // bufferedAmount once all arrived; -1: never
	Close    *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"close"`
}

func testBrowserSoak(t *testing.T, b Browser) {
	seed := rand.Uint64()
	if s := os.Getenv("SOAK_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", s, err)
		}
	}
	t.Logf("browser soak: %d sessions × %d messages each way; replay with SOAK_SEED=%d", browserSoakSessions, browserSoakMessages, seed)
	target := soaktarget.New(t, browserSoakMessages, 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	st := testenv.NewStack(t, testenv.StackOptions{
		Mount: func(mux *http.ServeMux) {
			mux.Handle("/polysocket.js", client.Handler())
			mux.HandleFunc("/soak.html", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = w.Write([]byte(soakPage))
			})
		},
		Relay: relay.Config{FQDN: "localhost:" + port},
	})
	proxy := faultproxy.New(l, faultproxy.Config{Upstream: st.Listener.Addr().String(), Plan: denseClientHop, Seed: seed})
	t.Cleanup(func() { proxy.Close() })

	tab := newTab(t, b)
	// The page and /create come straight from the stack; the sessions,
	// at {uniq}.localhost:{proxy port}, go through the faults.
	tab.navigate(strings.Replace(st.URL, "127.0.0.1", "localhost", 1) + "/soak.html")
	tab.poll("the soak page", 10*time.Second, "window.S && window.PolySocket && true", nil)
	var urls []string
	for i := range browserSoakSessions {
		mode := soaktarget.ModeClient
		if i%2 == 1 {
			mode = soaktarget.ModeTarget
		}
		urls = append(urls, target.URL(target.Addr(), i, mode))
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		raw, err := tab.page.Eval(ctx, "JSON.stringify(S.peek())")
		t.Logf("the sockets at the end: %s (%v)", raw, err)
		for i := range urls {
			t.Logf("target side %d: %+v", i, target.Side(i))
		}
	})
	begin := time.Now()
	tab.eval(fmt.Sprintf("S.start(%s, %d)", js(urls), browserSoakMessages), nil)
	var got []soakState
	tab.poll("every socket to close", browserSoakWait, "S.done()", &got)
	t.Logf("browser soak: %v; faults: %v over %d connections", time.Since(begin).Round(time.Millisecond), proxy.Counts(), proxy.Conns())
	for _, s := range got {
		checkBrowserSoak(t, s, target.Side(s.ID), urls[s.ID])
	}
}

// denseClientHop is faultproxy.ClientHop with a reset or a cut on about
// two connections in three: a browser keeps few connections alive for
// long, so the faults must come thicker to be many.
func denseClientHop(r *rand.Rand) faultproxy.Faults {
	f := faultproxy.ClientHop(r)
	if f.ResetAfter == 0 && f.CutAfter == 0 && r.IntN(2) == 0 {
		if r.IntN(2) == 0 {
			f.ResetAfter = 1 + r.Int64N(1500)
		} else {
			f.CutAfter = 1 + r.Int64N(1500)
		}
	}
	return f
}

// checkBrowserSoak checks one socket of the soak page against what the
// target saw.
func checkBrowserSoak(t *testing.T, s soakState, side soaktarget.Side, url string) {
	t.Helper()
	want := soaktarget.CloseByClient
	if strings.HasSuffix(url, soaktarget.ModeTarget) {
		want = soaktarget.CloseByTarget
	}
	switch {
	case len(s.Bad) > 0 || len(side.Bad) > 0:
		t.Errorf("socket %d: out of order: page %v, target %v", s.ID, s.Bad, side.Bad)
	case s.Echoes != browserSoakMessages || s.Pushes != browserSoakMessages || side.Got != browserSoakMessages:
		t.Errorf("socket %d: page got %d echoes and %d pushes, target %d messages; want %d each",
			s.ID, s.Echoes, s.Pushes, side.Got, browserSoakMessages)
	case s.Buffered != 0:
		t.Errorf("socket %d: bufferedAmount %d once everything arrived, want 0", s.ID, s.Buffered)
	case s.Close == nil || s.Close.Code != want:
		t.Errorf("socket %d: close %+v, want %d", s.ID, s.Close, want)
	}
}

// soakPage runs the soak in the page: S.start(urls, m) opens a
// PolySocket per target URL (relay transport), sends m numbered
// messages at once (every fifth binary), checks every message as it
// arrives (the echoes and the target's pushes, each stream in order),
// waits for bufferedAmount to come back to 0, and closes with 4100
// (the sessions whose target closes wait for its 4200). S.done()
// returns every socket's state once all have closed.
const soakPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>polysocket browser soak</title>
<script src="/polysocket.js"></script>
<script>
window.S = (function () {
  const socks = [];
  function filler(n, seed) {
    let s = '';
    for (let k = 0; k < n; k++) { s += String.fromCharCode(97 + (seed + k) % 26); }
    return s;
  }
  function cmsg(id, i) { return 'c' + id + ':' + i + ':' + filler(i * 37 % 400, i); }
  function pmsg(id, j) { return 'p' + id + ':' + j + ':' + filler(j * 53 % 1500, j); }
  function bytes(s) {
    const u8 = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) { u8[i] = s.charCodeAt(i); }
    return u8.buffer;
  }
  function text(d) {
    if (typeof d === 'string') { return d; }
    return String.fromCharCode.apply(null, new Uint8Array(d));
  }
  function state(s) {
    return {id: s.id, echoes: s.echoes, pushes: s.pushes, bad: s.bad, buffered: s.buffered, close: s.close};
  }
  function open(url, id, m) {
    const s = {id: id, echoes: 0, pushes: 0, bad: [], buffered: -1, close: null};
    const closeSelf = /mode=client$/.test(url);
    // The faults hit the probe of the session host too (two connections
    // in three), which the default 5s connect budget does not always
    // outlast; the soak is about what an open socket delivers.
    const ps = new PolySocket(url, [], {token: 'dev', forcePolyfill: true, connectTimeout: 30000});
    ps.binaryType = 'arraybuffer';
    ps.onopen = function () {
      for (let i = 1; i <= m; i++) { ps.send(i % 5 === 0 ? bytes(cmsg(id, i)) : cmsg(id, i)); }
    };
    function drained() {
      if (s.close) { return; }
      if (ps.bufferedAmount !== 0) { setTimeout(drained, 50); return; }
      s.buffered = 0;
      if (closeSelf) { ps.close(4100, 'soak'); }
    }
    ps.onmessage = function (e) {
      const d = text(e.data), binary = typeof e.data !== 'string';
      if (d.charAt(0) === 'c') {
        const n = s.echoes + 1;
        if (d !== cmsg(id, n) || binary !== (n % 5 === 0)) { s.bad.push('echo ' + d.slice(0, 30) + ', want ' + n); return; }
        s.echoes = n;
      } else {
        const n = s.pushes + 1;
        if (d !== pmsg(id, n)) { s.bad.push('push ' + d.slice(0, 30) + ', want ' + n); return; }
        s.pushes = n;
      }
      if (s.echoes === m && s.pushes === m) { drained(); }
    };
    ps.onerror = function (e) { s.bad.push('error ' + (e && e.message)); };
    ps.onclose = function (e) {
      if (s.buffered !== 0) { s.buffered = ps.bufferedAmount; }
      s.close = {code: e.code, reason: e.reason};
    };
    s.ps = ps;
    socks.push(s);
  }
  return {
    start: function (urls, m) { urls.forEach(function (u, id) { open(u, id, m); }); },
    done: function () {
      return socks.length > 0 && socks.every(function (s) { return s.close; }) ? socks.map(state) : null;
    },
    // peek tells where each socket stands, for a soak that did not end.
    peek: function () {
      return socks.map(function (s) {
        const r = s.ps._relay, st = state(s);
        st.readyState = s.ps.readyState;
        st.bufferedAmount = s.ps.bufferedAmount;
        if (r) {
          st.relay = {done: !!r.done, gone: !!r.gone, n: r.n, ack: r.ack, queue: r.queue.length,
            flying: r.flying.map(function (f) { return {n: f.req.p.n, path: f.req.path, post: !!f.req.post, tries: f.tries, failedAt: f.failedAt}; }),
            pollFailedAt: r.pollFailedAt || 0, pollTries: r.pollTries || 0, now: Date.now()};
        }
        return st;
      });
    }
  };
})();
</script>
</head><body>polysocket browser soak</body></html>
`
