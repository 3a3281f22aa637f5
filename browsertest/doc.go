// Package browsertest proves polysocket.js in a real browser: headless
// Chromium, driven from Go tests with chromedp, loads the library from a
// real router and relay (internal/testenv) and talks to real WebSocket
// targets on loopback.
//
// The package holds only tests. They need Chromium at /usr/bin/chromium
// (Debian's chromium package) and fail, rather than skip, without it.
// `UPDATE_SCREENSHOT=1 go test ./browsertest/ -run TestBrowser/demo`
// rewrites docs/demo.png, the README's picture of the demo page.
package browsertest
