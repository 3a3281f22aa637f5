package browser

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/polysocket/polysocket/client"
	"github.com/polysocket/polysocket/demo"
	"github.com/polysocket/polysocket/internal/testenv"
)

// testDemo drives the demo page as a person would: tick "force polyfill",
// type a message, press Send, see it come back over the relay. It saves a
// screenshot: to docs/demo.png with UPDATE_SCREENSHOT=1, else to a temp
// dir (so a plain test run never dirties the tree).
func testDemo(t *testing.T, b Browser) {
	d := demo.Handler(nil)
	opts := testenv.StackOptions{Mount: func(mux *http.ServeMux) {
		mux.Handle("/polysocket.js", client.Handler())
		// The relay owns "/"; the demo takes exactly "/" and /echo.
		mux.Handle("/{$}", d)
		mux.Handle("/echo", d)
	}}
	opts.Relay.FQDN = "localhost:{port}"
	st := testenv.NewStack(t, opts)
	t.Cleanup(func() { _ = d.Close() })
	_, port, _ := net.SplitHostPort(st.Listener.Addr().String())
	base := "http://localhost:" + port

	tb := newTab(t, b)
	tb.navigate(base + "/")
	// Native first: the browser has WebSocket.
	tb.poll("the native connection", 20*time.Second,
		`document.getElementById('status').className === 'open' && document.getElementById('transport').textContent`, nil)
	var transport string
	tb.eval(`document.getElementById('transport').textContent`, &transport)
	if transport != "native WebSocket" {
		t.Fatalf("transport line %q, want native WebSocket", transport)
	}
	tb.eval(`document.getElementById('force').click()`, nil)
	tb.poll("the relay connection", 20*time.Second,
		`document.getElementById('status').className === 'open' && document.getElementById('transport').textContent.indexOf('relay') >= 0`, nil)
	tb.eval(`document.getElementById('transport').textContent`, &transport)
	if transport != "polysocket relay (JSONP)" {
		t.Fatalf("transport line %q, want the relay", transport)
	}
	// Plain Latin text: the machine's fonts (DejaVu) have no emoji, and
	// the screenshot must not show tofu.
	for _, msg := range []string{"Hello, polysocket!", "Grüße from headless Chromium, over plain HTTP"} {
		tb.eval(`document.getElementById('msg').value = `+js(msg)+`; document.getElementById('send').click()`, nil)
		tb.poll("the echo of "+msg, 20*time.Second,
			`Array.from(document.querySelectorAll('#log .in')).some(e => e.textContent === '< '+`+js(msg)+`)`, nil)
	}
	if n := st.Relay.Registry().Len(); n != 1 {
		t.Fatalf("the relay has %d sessions, want the demo's 1", n)
	}
	ss, ok := tb.page.(screenshotter)
	if !ok {
		return // the README's picture comes from Chromium
	}
	shot, err := ss.Screenshot(tb.ctx, 900, 580)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	out := filepath.Join(t.TempDir(), "demo.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		out = filepath.Join("..", "..", "docs", "demo.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
}
