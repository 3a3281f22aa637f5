package browser

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
)

// Browser is one running browser engine. The test cases take one and
// never know which engine it is: they open pages and run JavaScript in
// them, nothing more.
type Browser interface {
	// Name is the engine, "chromium" or "firefox", as the subtests name it.
	Name() string
	// Version is the product and version the browser reports.
	Version() string
	// NewPage opens a new tab, on about:blank.
	NewPage(ctx context.Context) (Page, error)
	// Close stops the browser and waits for its process to exit.
	Close() error
}

// Page is one tab of a Browser. Its methods are called from one
// goroutine at a time.
type Page interface {
	// Navigate loads url and waits until the page has loaded (the load
	// event: its scripts have run).
	Navigate(ctx context.Context, url string) error
	// Eval runs JavaScript in the page as a script (statements allowed;
	// the value is the last one's) and returns that value as JSON (null
	// for undefined). An exception is an error.
	Eval(ctx context.Context, script string) (json.RawMessage, error)
	// Console returns what the page logged so far, for failure reports.
	Console() []string
	// Close closes the tab.
	Close() error
}

// screenshotter is a Page that can take a screenshot of a viewport of
// width×height CSS pixels (Chromium only: the picture in the README).
type screenshotter interface {
	Screenshot(ctx context.Context, width, height int) ([]byte, error)
}

// launch is how a test starts a browser: the same for every engine,
// each engine translating it to its own flags or prefs.
type launch struct {
	// Proxy is a forward HTTP proxy host:port that every request,
	// loopback ones included, goes through; "" for none.
	Proxy string
}

// engine starts one kind of browser.
type engine struct {
	name  string
	start func(t *testing.T, l launch) Browser
}

// engines are the browsers every case runs in. POLYSOCKET_BROWSERS
// (e.g. "firefox") narrows them while working on one engine; the full
// suite runs both.
func engines(t *testing.T) []engine {
	all := []engine{{"chromium", startChromium}, {"firefox", startFirefox}}
	only := os.Getenv("POLYSOCKET_BROWSERS")
	if only == "" {
		return all
	}
	var out []engine
	for _, e := range all {
		if strings.Contains(only, e.name) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		t.Fatalf("POLYSOCKET_BROWSERS=%q names no engine (chromium, firefox)", only)
	}
	return out
}

// browserCase is one browser test case: a function of the engine-neutral
// browser handle.
type browserCase struct {
	name string
	run  func(t *testing.T, b Browser)
}

// runCases runs the cases in every engine, one browser per engine
// started with l, a subtest per engine and case.
func runCases(t *testing.T, l launch, cases []browserCase) {
	for _, eng := range engines(t) {
		t.Run(eng.name, func(t *testing.T) {
			b := eng.start(t, l)
			t.Logf("%s: %s", eng.name, b.Version())
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, b) })
			}
		})
	}
}

// tabTimeout bounds everything one subtest does in its tab.
const tabTimeout = 90 * time.Second

// lockedBuffer collects a browser's output for error messages, written
// from another goroutine; it keeps the first max bytes.
type lockedBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max == 0 || l.b.Len() < l.max {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tab is one page for one subtest, with the test's failure handling.
type tab struct {
	t    *testing.T
	ctx  context.Context // bounded by tabTimeout
	page Page
	name string // the engine
}

// newTab opens a page in b, closed at t's cleanup. The page's console
// output is logged when t fails.
func newTab(t *testing.T, b Browser) *tab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tabTimeout)
	p, err := b.NewPage(ctx)
	if err != nil {
		cancel()
		t.Fatalf("%s: opening a tab: %v", b.Name(), err)
	}
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			for _, m := range p.Console() {
				t.Logf("page console: %s", m)
			}
		}
		if err := p.Close(); err != nil {
			t.Logf("closing the tab: %v", err)
		}
	})
	return &tab{t: t, ctx: ctx, page: p, name: b.Name()}
}

// navigate loads url in the tab or fails the test.
func (tb *tab) navigate(url string) {
	tb.t.Helper()
	if err := tb.page.Navigate(tb.ctx, url); err != nil {
		tb.t.Fatalf("loading %s: %v", url, err)
	}
}

// eval runs a script in the page and decodes its value into v (nil:
// ignore it).
func (tb *tab) eval(script string, v any) {
	tb.t.Helper()
	raw, err := tb.page.Eval(tb.ctx, script)
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", short(script), err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			tb.t.Fatalf("decoding the value of %s (%s): %v", short(script), short(string(raw)), err)
		}
	}
}

// pollInterval is how often poll asks the page.
const pollInterval = 20 * time.Millisecond

// poll waits up to d until the expression expr is truthy and decodes its
// value into v (nil: ignore it).
func (tb *tab) poll(what string, d time.Duration, expr string, v any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d)
	defer cancel()
	script := fmt.Sprintf("(() => { const v = (%s); return v ? v : null; })()", expr)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		raw, err := tb.page.Eval(ctx, script)
		if err == nil && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			if v != nil {
				if err := json.Unmarshal(raw, v); err != nil {
					tb.t.Fatalf("decoding %s (%s): %v", what, short(string(raw)), err)
				}
			}
			return
		}
		if err == nil {
			err = ctx.Err()
		}
		if ctx.Err() != nil {
			tb.t.Fatalf("waiting %v for %s: %v", d, what, err)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}
