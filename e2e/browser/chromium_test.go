package browser

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium. The tests never download a browser.
const chromiumPath = "/usr/bin/chromium"

// chromium is a headless Chromium driven over the DevTools protocol
// (chromedp).
type chromium struct {
	ctx     context.Context // the browser's chromedp context
	version string
	stop    func()
}

var _ Browser = (*chromium)(nil)

// startChromium starts one headless Chromium with a fresh profile,
// stopped at t's cleanup. A missing or broken browser fails the test:
// these tests are the proof that the library works in a browser, so
// skipping would hide that.
func startChromium(t *testing.T, l launch) Browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian: apt-get install chromium): %v", chromiumPath, err)
	}
	out := &lockedBuffer{max: 1 << 20}
	opts := []chromedp.ExecAllocatorOption{
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
		chromedp.WSURLReadTimeout(30 * time.Second),
		chromedp.CombinedOutput(out),
	}
	if l.Proxy != "" {
		// <-loopback> takes away the implicit bypass of localhost,
		// *.localhost and 127.0.0.1: everything goes through the proxy.
		opts = append(opts, chromedp.ProxyServer("http://"+l.Proxy),
			chromedp.Flag("proxy-bypass-list", "<-loopback>"))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	c := &chromium{ctx: bctx}
	c.stop = func() {
		cctx, ccancel := context.WithTimeout(bctx, 10*time.Second)
		_ = chromedp.Cancel(cctx)
		ccancel()
		bcancel()
		acancel() // waits for the browser process to exit
	}
	t.Cleanup(func() { _ = c.Close() })
	// The first action on the browser context starts the browser.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium (%s) failed: %v\nbrowser output:\n%s", chromiumPath, err, out.String())
	}
	c.version = chromiumVersion()
	return c
}

// chromiumVersion asks the binary (the user agent hides the minor
// numbers); "" when it cannot tell.
func chromiumVersion() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, chromiumPath, "--version").Output()
	if err != nil {
		return ""
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(b)), " built on")
	return v
}

func (c *chromium) Name() string    { return "chromium" }
func (c *chromium) Version() string { return c.version }

// Close stops the browser; later calls do nothing.
func (c *chromium) Close() error {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	return nil
}

// NewPage opens a tab (a chromedp target) in the browser.
func (c *chromium) NewPage(ctx context.Context) (Page, error) {
	tctx, cancel := chromedp.NewContext(c.ctx)
	if err := chromedp.Do(tctx); err != nil {
		cancel()
		return nil, err
	}
	p := &chromiumPage{ctx: tctx, cancel: cancel, done: make(chan struct{})}
	msgs := chromedp.Console(tctx)
	go func() {
		defer close(p.done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m.String())
			p.mu.Unlock()
		}
	}()
	return p, nil
}

// chromiumPage is a Chromium tab; its console reader stops when the tab
// closes.
type chromiumPage struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the console reader returns

	mu      sync.Mutex
	console []string
}

// bounded runs with ctx's deadline on the tab's context.
func (p *chromiumPage) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(p.ctx, d)
	}
	return context.WithCancel(p.ctx)
}

func (p *chromiumPage) Navigate(ctx context.Context, url string) error {
	bctx, cancel := p.bounded(ctx)
	defer cancel()
	return chromedp.Do(bctx, chromedp.Navigate(url))
}

func (p *chromiumPage) Eval(ctx context.Context, script string) (json.RawMessage, error) {
	bctx, cancel := p.bounded(ctx)
	defer cancel()
	raw, err := chromedp.Run(bctx, chromedp.Evaluate[[]byte](script))
	if err == nil && len(raw) == 0 {
		raw = []byte("null") // undefined
	}
	return raw, err
}

func (p *chromiumPage) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

func (p *chromiumPage) Close() error {
	p.cancel()
	<-p.done
	return nil
}

// Screenshot takes a PNG of a width×height viewport.
func (p *chromiumPage) Screenshot(ctx context.Context, width, height int) ([]byte, error) {
	bctx, cancel := p.bounded(ctx)
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		return nil, err
	}
	return chromedp.Run(bctx, chromedp.CaptureScreenshot())
}
