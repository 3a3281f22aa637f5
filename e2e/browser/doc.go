// Package browser proves polysocket.js in real browsers: headless
// Chromium (driven with chromedp over the DevTools protocol) and headless
// Firefox ESR (driven over WebDriver BiDi, which Firefox serves itself,
// with a small client on coder/websocket) load the library from a real
// router and relay (internal/testenv) and talk to real WebSocket targets
// on loopback.
//
// Each test case is written once, as a function of the engine-neutral
// Browser (pages with Navigate, Eval and Close), and runs in every
// engine: TestBrowser/chromium/echo, TestBrowser/firefox/echo, and so
// on. POLYSOCKET_BROWSERS=firefox (or chromium) narrows a run to one
// engine while working on it.
//
// The package holds only tests. They need /usr/bin/chromium and
// /usr/bin/firefox-esr (Debian's chromium and firefox-esr packages) and
// fail, rather than skip, without them.
// `UPDATE_SCREENSHOT=1 go test ./e2e/browser/ -run TestBrowser/chromium/demo`
// rewrites docs/demo.png, the README's picture of the demo page.
package browser
