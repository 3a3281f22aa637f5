package client

import (
	"sort"
	"strings"
	"testing"

	"github.com/dop251/goja"
)

// newVM loads polysocket.js into a fresh goja runtime whose global object
// doubles as a minimal `window`: no document, no WebSocket, and a
// setTimeout that queues callbacks for runTimers.
func newVM(t *testing.T) (*goja.Runtime, func()) {
	t.Helper()
	vm := goja.New()
	var timers []goja.Callable
	vm.Set("window", vm.GlobalObject())
	vm.Set("setTimeout", func(fn goja.Callable, _ int) int {
		timers = append(timers, fn)
		return len(timers)
	})
	vm.Set("clearTimeout", func(int) {})
	run := func() {
		for i := 0; i < 100 && len(timers) > 0; i++ {
			fn := timers[0]
			timers = timers[1:]
			if _, err := fn(goja.Undefined()); err != nil {
				t.Fatalf("timer: %v", err)
			}
		}
	}
	return vm, run
}

func globals(t *testing.T, vm *goja.Runtime) []string {
	t.Helper()
	v, err := vm.RunString(`Object.getOwnPropertyNames(this).join(',')`)
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(v.String(), ",")
	sort.Strings(names)
	return names
}

// build is one form of the library: as written, or as served.
type build struct {
	name string
	src  []byte
}

// builds returns the source and the minified build: every test that runs
// the library runs both, so the minifier cannot break it unnoticed.
func builds(t *testing.T) []build {
	t.Helper()
	return []build{{"source", Source()}, {"minified", newLibrary(t).Minified()}}
}

func TestOnlyGlobalIsPolySocket(t *testing.T) {
	for _, b := range builds(t) {
		t.Run(b.name, func(t *testing.T) { onlyGlobal(t, b.src) })
	}
}

func onlyGlobal(t *testing.T, src []byte) {
	vm, _ := newVM(t)
	before := map[string]bool{}
	for _, g := range globals(t, vm) {
		before[g] = true
	}
	if _, err := vm.RunScript("polysocket.js", string(src)); err != nil {
		t.Fatalf("load: %v", err)
	}
	var added []string
	for _, g := range globals(t, vm) {
		if !before[g] {
			added = append(added, g)
		}
	}
	if strings.Join(added, ",") != "PolySocket" {
		t.Errorf("new globals %v, want only PolySocket", added)
	}
}

// eval loads the library src and evaluates js, which must yield a string.
func eval(t *testing.T, src []byte, js string) string {
	t.Helper()
	return evalAfter(t, "", src, js)
}

// evalAfter runs prelude, loads the library src, and evaluates js.
func evalAfter(t *testing.T, prelude string, src []byte, js string) string {
	t.Helper()
	vm, run := newVM(t)
	if _, err := vm.RunString(prelude); err != nil {
		t.Fatalf("prelude: %v", err)
	}
	if _, err := vm.RunScript("polysocket.js", string(src)); err != nil {
		t.Fatalf("load: %v", err)
	}
	vm.Set("runTimers", run)
	v, err := vm.RunString(js)
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v.String()
}

func TestAPI(t *testing.T) {
	tests := []struct{ name, js, want string }{
		{"constants", `[PolySocket.CONNECTING, PolySocket.OPEN, PolySocket.CLOSING, PolySocket.CLOSED,
			PolySocket.prototype.OPEN].join()`, "0,1,2,3,1"},
		{"bad url", `try { new PolySocket('http://x/'); 'no' } catch (e) { e.name }`, "SyntaxError"},
		{"bad protocol", `try { new PolySocket('ws://x/', ['a b']); 'no' } catch (e) { e.name }`, "SyntaxError"},
		{"dup protocol", `try { new PolySocket('ws://x/', ['a', 'a']); 'no' } catch (e) { e.name }`, "SyntaxError"},
		{"bad close code", `try { PolySocket.prototype.close.call({readyState: 1}, 1001); 'no' } catch (e) { e.name }`, "InvalidAccessError"},
		{"long reason", `try { PolySocket.prototype.close.call({readyState: 1}, 1000, new Array(63).join('\u00e9')); 'no' } catch (e) { e.name }`, "SyntaxError"},
		{"reason 123 bytes", `PolySocket.prototype.close.call({readyState: 3}, 4999, new Array(124).join('a')); 'ok'`, "ok"},
		{"send while connecting", `var s = new PolySocket('ws://x/', [], {router: 'http://r'});
			try { s.send('x'); 'no' } catch (e) { e.name }`, "InvalidStateError"},
		// No document here: the relay cannot start, so the socket ends
		// asynchronously with error then close 1006, never open.
		{"no transport", `var s = new PolySocket('ws://x/', 'p', {router: 'http://r'}), log = [];
			s.onopen = function () { log.push('open'); };
			s.addEventListener('error', function (e) { log.push(e.type + ':' + (e.target === s)); });
			var h = function () { log.push('removed'); };
			s.addEventListener('close', h); s.removeEventListener('close', h);
			s.onclose = function (e) { log.push(e.type + ':' + e.code + ':' + e.wasClean + ':' + s.readyState); };
			log.push(s.readyState + ':' + s.transport + ':' + s.binaryType + ':' + s.bufferedAmount);
			runTimers(); log.join(' ')`, "0:relay:arraybuffer:0 error:true close:1006:false:3"},
	}
	for _, b := range builds(t) {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				if got := eval(t, b.src, tt.js); got != tt.want {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// fakeNative is a stand-in for the browser's WebSocket that records the
// URLs it is asked for and never connects.
const fakeNative = `var made = [];
	function Fake(url) { made.push(url); this.readyState = 0; }
	Fake.prototype.close = function () {};
	window.WebSocket = Fake;`

func TestInstall(t *testing.T) {
	tests := []struct{ name, prelude, js, want string }{
		// Native first: install keeps the browser's WebSocket for
		// PolySocket's own attempt, and the defaults apply.
		{"native first", fakeNative, `var W = PolySocket.install({router: 'http://r/', token: 'T'}), s = new WebSocket('ws://x/');
			[window.WebSocket === W, s instanceof WebSocket, s instanceof PolySocket, WebSocket.CLOSING,
			 s.transport, made.join(), s._token, s._router].join()`,
			"true,true,true,2,websocket,ws://x/,T,http://r"},
		{"forced", fakeNative, `PolySocket.install({router: 'http://r', forcePolyfill: true});
			var s = new WebSocket('ws://x/', 'p'); [s.transport, made.length, s._protocols.join()].join()`, "relay,0,p"},
		{"per-call options win", "", `PolySocket.install({router: 'http://r', token: 'T'});
			new WebSocket('ws://x/', [], {token: 'U'})._token`, "U"},
		{"twice", fakeNative, `PolySocket.install(); PolySocket.install({router: 'http://r'});
			new WebSocket('ws://y/'); made.join()`, "ws://y/"},
		{"uninstall", fakeNative, `PolySocket.install(); PolySocket.uninstall(); String(window.WebSocket === Fake)`, "true"},
		{"no native", "", `PolySocket.install({router: 'http://r'}); var s = new WebSocket('ws://x/');
			PolySocket.uninstall(); [s.transport, typeof window.WebSocket].join()`, "relay,undefined"},
		// data-token / data-router on the script tag install at load.
		{"script tag", fakeNative + `window.document = {currentScript: {src: 'https://ps.example.com:8443/polysocket.js',
				getAttribute: function (n) { return n === 'data-token' ? 'T' : null; }}};`,
			`var s = new WebSocket('ws://x/'); [window.WebSocket !== Fake, s._token, s._router, made.join()].join()`,
			"true,T,https://ps.example.com:8443,ws://x/"},
		{"script tag router", fakeNative + `window.document = {currentScript: {src: 'https://cdn.example.com/polysocket.js',
				getAttribute: function (n) { return n === 'data-router' ? 'https://ps.example.com' : null; }}};`,
			`new WebSocket('ws://x/')._router`, "https://ps.example.com"},
		// Loaded after parsing (an ES module import, a script added
		// later): the last script tag is not this file's.
		{"not the last tag", fakeNative + `window.document = {readyState: 'complete', getElementsByTagName: function () {
				return [{src: 'https://other.example.com/x.js', getAttribute: function () { return 'T'; }}]; }};`,
			`String(window.WebSocket === Fake)`, "true"},
		{"last tag while parsing", fakeNative + `window.document = {readyState: 'loading', getElementsByTagName: function () {
				return [{src: 'https://ps.example.com/polysocket.js', getAttribute: function (n) { return n === 'data-token' ? 'T' : null; }}]; }};`,
			`new WebSocket('ws://x/')._router`, "https://ps.example.com"},
		{"plain script tag", fakeNative + `window.document = {currentScript: {src: 'https://ps.example.com/polysocket.js',
				getAttribute: function () { return null; }}};`, `String(window.WebSocket === Fake)`, "true"},
	}
	for _, b := range builds(t) {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				if got := evalAfter(t, tt.prelude, b.src, tt.js); got != tt.want {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	}
}
