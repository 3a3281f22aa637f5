package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium. The tests never download a browser.
const chromiumPath = "/usr/bin/chromium"

// tabTimeout bounds everything one subtest does in its tab.
const tabTimeout = 90 * time.Second

// lockedBuffer collects the browser's output for error messages; the
// allocator writes it from its own goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startBrowser starts one headless Chromium with a fresh profile, closed
// at t's cleanup, and returns its context; subtests open tabs in it. A
// missing or broken browser fails the test: these tests are the proof
// that the library works in a browser, so skipping would hide that.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian: apt-get install chromium): %v", chromiumPath, err)
	}
	out := &lockedBuffer{}
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		// Containers often have a tiny /dev/shm, where Chromium crashes.
		chromedp.Flag("disable-dev-shm-usage", true),
		// Background tabs must keep their timers: the library's polls
		// and retries are timers.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WSURLReadTimeout(30*time.Second),
		chromedp.CombinedOutput(out),
	)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(bctx, 10*time.Second)
		_ = chromedp.Cancel(cctx)
		ccancel()
		bcancel()
		acancel() // waits for the browser process to exit
	})
	// The first Do on the browser context starts the browser.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium (%s) failed: %v\nbrowser output:\n%s", chromiumPath, err, out.String())
	}
	return bctx
}

// tab is one browser tab for one subtest.
type tab struct {
	t   *testing.T
	ctx context.Context // bounded by tabTimeout

	mu      sync.Mutex
	console []string
}

// newTab opens a tab in the browser, closed at t's cleanup. The page's
// console output and uncaught exceptions are logged when t fails.
func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	tctx, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(tctx); err != nil {
		cancel()
		t.Fatalf("opening a tab: %v", err)
	}
	ctx, tcancel := context.WithTimeout(tctx, tabTimeout)
	tb := &tab{t: t, ctx: ctx}
	msgs := chromedp.Console(tctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m.String())
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		tcancel()
		cancel()
		<-done
		if t.Failed() {
			tb.mu.Lock()
			defer tb.mu.Unlock()
			for _, m := range tb.console {
				t.Logf("page console: %s", m)
			}
		}
	})
	return tb
}

// do runs actions in the tab or fails the test.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and decodes its value into v
// (nil: ignore it).
func (tb *tab) eval(expr string, v any) {
	tb.t.Helper()
	raw, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", short(expr), err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			tb.t.Fatalf("decoding the value of %s (%s): %v", short(expr), short(string(raw)), err)
		}
	}
}

// poll waits until expr is truthy and decodes its value into v (nil:
// ignore it).
func (tb *tab) poll(what string, d time.Duration, expr string, v any) {
	tb.t.Helper()
	raw, err := chromedp.Run(tb.ctx, chromedp.Poll[[]byte](expr,
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(d)))
	if err != nil {
		tb.t.Fatalf("waiting %v for %s: %v", d, what, err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			tb.t.Fatalf("decoding %s (%s): %v", what, short(string(raw)), err)
		}
	}
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// js quotes v as a JavaScript literal.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// event is what the test page records for one PolySocket event.
type event struct {
	Type string `json:"type"` // open, message, error, close
	// open
	Transport string `json:"transport"`
	Base      string `json:"base"` // the relay base URL, "" over WebSocket
	// message: kind is text, arraybuffer or blob; len counts UTF-16
	// units or bytes; sum is FNV-1a over them; data is the text when
	// short.
	Kind string  `json:"kind"`
	Len  int     `json:"len"`
	Sum  uint32  `json:"sum"`
	Data *string `json:"data"`
	// close
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	WasClean bool   `json:"wasClean"`
}

func (e event) String() string {
	switch e.Type {
	case "message":
		if e.Data != nil {
			return fmt.Sprintf("message(%s %q)", e.Kind, *e.Data)
		}
		return fmt.Sprintf("message(%s len %d)", e.Kind, e.Len)
	case "close":
		return fmt.Sprintf("close(%d %q clean=%v)", e.Code, e.Reason, e.WasClean)
	case "open":
		return "open(" + e.Transport + ")"
	}
	return e.Type
}

func eventsString(evs []event) string {
	var b strings.Builder
	for i, e := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 20 {
			fmt.Fprintf(&b, "... %d more", len(evs)-i)
			break
		}
		b.WriteString(e.String())
	}
	return b.String()
}

// events waits until socket id has recorded at least n events (all
// decoded) and returns them.
func (tb *tab) events(id, n int, d time.Duration) []event {
	tb.t.Helper()
	var evs []event
	tb.poll(fmt.Sprintf("%d events on socket %d", n, id), d, fmt.Sprintf("T.ready(%d, %d)", id, n), &evs)
	return evs
}

// snapshot returns what socket id recorded so far.
func (tb *tab) snapshot(id int) []event {
	tb.t.Helper()
	var evs []event
	tb.eval(fmt.Sprintf("T.socks[%d].events", id), &evs)
	return evs
}
