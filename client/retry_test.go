package client

import (
	"testing"

	"github.com/dop251/goja"
)

// fakePage is a window for the library's relay transport in goja: a
// document whose script tags the test answers or fails (T.scripts),
// timers the test fires (T.timers, with their delays) and a clock it
// sets (T.now).
const fakePage = `
var T = {now: 1000, scripts: [], timers: []};
Date = function () { return {getTime: function () { return T.now; }}; };
setTimeout = function (fn, ms) { T.timers.push({fn: fn, ms: ms || 0}); return T.timers.length; };
clearTimeout = function () {};
addEventListener = function () {};
var head = {
  insertBefore: function (s) { T.scripts.push(s); s.parentNode = head; },
  removeChild: function () {}
};
document = {
  getElementsByTagName: function () { return [head]; },
  createElement: function () { return {setAttribute: function () {}}; }
};
// run0 fires the timers due now (delay 0), in order.
T.run0 = function () {
  for (var i = 0; i < T.timers.length; i++) {
    var tm = T.timers[i];
    if (tm.ms === 0 && tm.fn) { var fn = tm.fn; tm.fn = null; fn(); }
  }
};
// lastScript is the newest script tag; answer calls its callback.
T.lastScript = function () { return T.scripts[T.scripts.length - 1]; };
T.answer = function (reply) {
  PolySocket._cb[/_cb\.(c[0-9]+)/.exec(T.lastScript().src)[1]](reply);
};
// retry is the newest timer of a retry's length (not a request's
// timeout, which is far longer), fired and returned.
T.retry = function () {
  for (var i = T.timers.length - 1; i >= 0; i--) {
    var tm = T.timers[i];
    if (tm.fn && tm.ms > 0 && tm.ms <= 10000) { var fn = tm.fn; tm.fn = null; fn(); return tm.ms; }
  }
  return -1;
};
// openSession opens a PolySocket on the relay transport and answers its
// create and the probe of the session host (the ttl=0 poll before open);
// the first long poll is then in flight.
T.openSession = function () {
  var ps = new PolySocket('ws://t/', [], {router: 'http://r', token: 'dev', forcePolyfill: true});
  T.log = [];
  ps.onclose = function (e) { T.log.push(e.code + ' ' + e.reason); };
  T.run0();
  T.answer({ok: true, fqdn: 'u.r', socket: 'S', protocol: ''});
  T.run0();
  T.answer({ok: true, messages: []});
  T.run0();
  return ps;
};
`

// pageVM loads fakePage and the library into a fresh goja runtime.
func pageVM(t *testing.T) *goja.Runtime {
	t.Helper()
	vm := goja.New()
	vm.Set("window", vm.GlobalObject())
	if _, err := vm.RunScript("fake page", fakePage); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.RunScript("polysocket.js", string(Source())); err != nil {
		t.Fatal(err)
	}
	return vm
}

func run(t *testing.T, vm *goja.Runtime, js string) goja.Value {
	t.Helper()
	v, err := vm.RunString(js)
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// TestRetryJitter checks that a failed poll's retry waits the backoff
// plus a random part: pages that a blip failed together spread their
// retries instead of hammering the relay in step.
func TestRetryJitter(t *testing.T) {
	waits := map[string]int64{}
	for _, r := range []string{"0", "0.999"} {
		vm := pageVM(t)
		run(t, vm, "Math.random = function () { return "+r+"; }; T.openSession(); T.lastScript().onerror();")
		waits[r] = run(t, vm, "T.retry()").ToInteger()
	}
	if waits["0"] != 250 || waits["0.999"] <= 250 || waits["0.999"] > 375 {
		t.Fatalf("first retry waits %v for Math.random 0 and 0.999; want 250 and more, up to 375", waits)
	}
}

// TestGiveUpCloses checks that a session whose relay stays unreachable
// past the give-up time closes with 1006 and a reason saying so.
func TestGiveUpCloses(t *testing.T) {
	vm := pageVM(t)
	run(t, vm, "T.openSession(); T.lastScript().onerror();")
	for i := 0; i < 100 && run(t, vm, "T.log.length").ToInteger() == 0; i++ {
		run(t, vm, "T.now += 5000; T.retry(); T.run0(); T.lastScript().onerror && T.lastScript().onerror(); T.run0();")
	}
	if got := run(t, vm, "T.log.join('|')").String(); got != "1006 PolySocket: relay unreachable" {
		t.Fatalf("close events %q, want one 1006 with the reason", got)
	}
}

// TestSendWindowBehindHungSend checks that while one send hangs (no
// answer, no failure yet) the others do not run more than the relay's
// window (64) ahead of it: the relay refuses such numbers for good, and
// the message would be lost (seen in Firefox under the soak's faults).
func TestSendWindowBehindHungSend(t *testing.T) {
	vm := pageVM(t)
	run(t, vm, `var ps = T.openSession(), answered = {}, top = 0;
		for (var i = 1; i <= 200; i++) { ps.send('m' + i); }
		for (var k = 0; k < 1000; k++) {
			var any = false;
			for (var j = 0; j < T.scripts.length; j++) {
				var s = T.scripts[j], m = /\/s\/S\?cb=PolySocket\._cb\.(c[0-9]+).*&n=([0-9]+)/.exec(s.src);
				if (!m || answered[m[1]]) { continue; }
				var n = Number(m[2]);
				if (n > top) { top = n; }
				if (n === 1) { continue; } // hangs
				answered[m[1]] = true; any = true;
				PolySocket._cb[m[1]]({ok: true});
			}
			if (!any) { break; }
		}`)
	if top := run(t, vm, "top").ToInteger(); top < 2 || top > 64 {
		t.Fatalf("sends went up to n=%d behind a hung n=1; want 2..64 (the relay's window)", top)
	}
}
