package browser

import (
	"hash/fnv"
	"net/http"
	"unicode/utf16"
)

// testPage is served at /t.html. Its first script sets up window.WebSocket
// as ?mode= asks BEFORE polysocket.js loads:
//
//   - none:   removed, as in a browser without WebSocket;
//   - native: left alone;
//   - fail:   replaced by a fake whose connection fails before opening
//     (error then close, asynchronously), like a proxy that breaks the
//     upgrade.
//
// The harness T opens PolySockets and records their events (messages as
// length and FNV-1a checksum) in T.socks[id].events for the test to read.
// Only the library must be ES3; this page is modern JavaScript.
const testPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>polysocket browser test</title>
<script>
(function () {
  const mode = new URLSearchParams(location.search).get('mode') || 'none';
  window.fakeCalls = 0;
  if (mode === 'none') {
    delete window.WebSocket;
    if (window.WebSocket) { window.WebSocket = undefined; }
  } else if (mode === 'fail') {
    function FakeWebSocket(url) {
      window.fakeCalls++;
      this.url = url;
      this.readyState = 0;
      const ws = this;
      setTimeout(function () {
        ws.readyState = 3;
        if (ws.onerror) { ws.onerror({type: 'error'}); }
        if (ws.onclose) { ws.onclose({type: 'close', code: 1006, reason: '', wasClean: false}); }
      }, 20);
    }
    FakeWebSocket.prototype.close = function () { this.readyState = 3; };
    FakeWebSocket.prototype.send = function () { throw new Error('fake WebSocket cannot send'); };
    window.WebSocket = FakeWebSocket;
  }
})();
</script>
<script src="/polysocket.js"></script>
<script>
window.T = (function () {
  function fnvUnits(s) {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) { h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0; }
    return h >>> 0;
  }
  function fnvBytes(u8) {
    let h = 0x811c9dc5;
    for (let i = 0; i < u8.length; i++) { h = Math.imul(h ^ u8[i], 0x01000193) >>> 0; }
    return h >>> 0;
  }
  // pattern is the test's binary data; Go's pattern() makes the same.
  function pattern(n) {
    const u8 = new Uint8Array(n);
    for (let i = 0; i < n; i++) { u8[i] = (i * 7 + (i >> 9)) & 255; }
    return u8;
  }
  const socks = [];
  // Every request's timing is kept (the default keeps 250): fallback
  // times are read from them.
  if (performance.setResourceTimingBufferSize) { performance.setResourceTimingBufferSize(100000); }
  function open(url, opts) {
    opts = opts || {};
    const s = {events: [], pending: 0, url: url, t0: performance.now()};
    const ps = new PolySocket(url, opts.protocols || [], {
      token: 'dev', forcePolyfill: !!opts.forcePolyfill,
      connectTimeout: opts.connectTimeout, rememberFallback: opts.rememberFallback
    });
    const push = s.events.push;
    // Each event records when it came, in ms since the constructor.
    s.events.push = function (ev) { ev.at = performance.now() - s.t0; return push.call(this, ev); };
    if (opts.binaryType) { ps.binaryType = opts.binaryType; }
    s.ps = ps;
    ps.addEventListener('open', function () {
      s.events.push({type: 'open', transport: ps.transport, base: ps._relay ? ps._relay.base : ''});
    });
    ps.addEventListener('message', function (e) {
      const d = e.data;
      if (typeof d === 'string') {
        s.events.push({type: 'message', kind: 'text', len: d.length, sum: fnvUnits(d), data: d.length <= 200 ? d : null});
      } else if (d instanceof ArrayBuffer) {
        const u8 = new Uint8Array(d);
        s.events.push({type: 'message', kind: 'arraybuffer', len: u8.length, sum: fnvBytes(u8)});
      } else if (d instanceof Blob) {
        const ev = {type: 'message', kind: 'blob', len: -1};
        s.events.push(ev);
        s.pending++;
        d.arrayBuffer().then(function (ab) {
          const u8 = new Uint8Array(ab);
          ev.len = u8.length;
          ev.sum = fnvBytes(u8);
          s.pending--;
        });
      } else {
        s.events.push({type: 'message', kind: 'other ' + typeof d});
      }
    });
    ps.addEventListener('error', function () { s.events.push({type: 'error'}); });
    ps.addEventListener('close', function (e) {
      s.events.push({type: 'close', code: e.code, reason: e.reason, wasClean: e.wasClean});
    });
    socks.push(s);
    return socks.length - 1;
  }
  return {
    socks: socks,
    open: open,
    // ready returns the events once there are at least n, all decoded.
    ready: function (id, n) {
      const s = socks[id];
      return s.pending === 0 && s.events.length >= n ? s.events : null;
    },
    send: function (id, data) { socks[id].ps.send(data); },
    sendBytes: function (id, n, as) {
      const u8 = pattern(n);
      let d = u8.buffer;
      if (as === 'blob') { d = new Blob([u8]); }
      if (as === 'view') { d = new DataView(u8.buffer); }
      socks[id].ps.send(d);
    },
    sendRepeat: function (id, s, n) { socks[id].ps.send(s.repeat(n)); },
    burst: function (id, n) { for (let i = 0; i < n; i++) { socks[id].ps.send('m' + i); } },
    close: function (id, code, reason) { socks[id].ps.close(code, reason); },
    // timing returns, in ms since socket id's constructor, when its /create
    // request started (-1: none) and how long its first poll (the ttl=0
    // one that comes before open) took.
    timing: function (id) {
      const s = socks[id], out = {create: -1, probe: -1};
      for (const e of performance.getEntriesByType('resource')) {
        if (e.startTime < s.t0) { continue; }
        if (out.create < 0 && e.name.indexOf('/create?') >= 0 && e.name.indexOf('target=' + encodeURIComponent(s.url)) >= 0) {
          out.create = e.startTime - s.t0;
        }
        if (out.create >= 0 && out.probe < 0 && e.name.indexOf('ttl=0&a=0') >= 0) {
          out.probe = e.responseEnd - e.startTime;
        }
      }
      return out;
    },
    state: function (id) { const ps = socks[id].ps; return {readyState: ps.readyState, transport: ps.transport, bufferedAmount: ps.bufferedAmount}; }
  };
})();
</script>
</head><body>polysocket browser test</body></html>
`

// servePage serves testPage.
func servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(testPage))
}

// pattern is the page's pattern(n).
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// sumBytes is the page's fnvBytes.
func sumBytes(b []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(b)
	return h.Sum32()
}

// sumText is the page's fnvUnits: FNV-1a over UTF-16 code units, each
// folded in as one value (the page XORs whole units, not bytes).
func sumText(s string) (uint32, int) {
	units := utf16.Encode([]rune(s))
	h := uint32(0x811c9dc5)
	for _, u := range units {
		h = (h ^ uint32(u)) * 0x01000193
	}
	return h, len(units)
}
