// Package demo serves the page `polysocket both` shows at / and the echo
// WebSocket target it talks to at /echo.
//
// The page loads /polysocket.js from its own origin and echoes what a
// person types through the built-in target, either over the browser's
// WebSocket or, with "force polyfill" ticked, through the relay. The echo
// target is a plain coder/websocket server: the relay reaches it exactly
// like any other target.
package demo

import (
	"context"
	_ "embed"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// ReadLimit is the largest message the echo target accepts, above the
// relay's 1 MiB message limit so the limit tested is the relay's.
const ReadLimit = 2 << 20

// writeTimeout bounds one echo write; a peer that stops reading is
// dropped rather than holding its goroutine forever.
const writeTimeout = 10 * time.Second

//go:embed index.html
var page []byte

// Demo is the demo page and echo target. It is an http.Handler for "/"
// and "/echo"; other paths get 404. Close ends every echo connection and
// waits for their handlers to return.
type Demo struct {
	log    *zap.Logger
	ctx    context.Context // cancelled by Close; parent of every connection
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and wg.Add against Close's wg.Wait
	closed bool
	wg     sync.WaitGroup // one per live echo connection
}

// Handler returns the demo handler. log may be nil.
func Handler(log *zap.Logger) *Demo {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Demo{log: log, ctx: ctx, cancel: cancel}
}

// ServeHTTP serves the page at / and the echo WebSocket at /echo.
func (d *Demo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/", "/index.html":
		d.servePage(w, r)
	case "/echo":
		d.serveEcho(w, r)
	default:
		http.NotFound(w, r)
	}
}

// Close ends all echo connections with 1001 (going away), refuses new
// ones, and returns once every connection's handler has returned.
func (d *Demo) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return nil
}

func (d *Demo) servePage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	if r.Method == http.MethodGet {
		_, _ = w.Write(page)
	}
}

// track registers one connection with Close; false once closed.
func (d *Demo) track() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.wg.Add(1)
	return true
}

func (d *Demo) serveEcho(w http.ResponseWriter, r *http.Request) {
	if !d.track() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer d.wg.Done()
	// Any origin: the demo target is reached by pages on other hosts and
	// by relays, which forward the page's Origin.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		d.log.Debug("echo accept failed", zap.Error(err))
		return
	}
	log := d.log.With(zap.String("remote", r.RemoteAddr))
	log.Debug("echo connected")
	c.SetReadLimit(ReadLimit)
	// Close ends the connection with a proper close frame.
	stop := context.AfterFunc(d.ctx, func() { _ = c.Close(websocket.StatusGoingAway, "server closing") })
	defer stop()
	// Reads are not tied to d.ctx: cancelling a read drops the
	// connection without a close frame; the AfterFunc above closes it
	// properly instead, which ends the read.
	err = echo(context.WithoutCancel(d.ctx), d.ctx, c)
	_ = c.CloseNow()
	log.Debug("echo ended", zap.Error(err))
}

// echo writes back every message it reads until the connection ends.
// coder/websocket answers a peer's close frame with the same code, so a
// client's close code comes back to it.
func echo(readCtx, writeCtx context.Context, c *websocket.Conn) error {
	for {
		typ, b, err := c.Read(readCtx)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(writeCtx, writeTimeout)
		err = c.Write(wctx, typ, b)
		cancel()
		if err != nil {
			return err
		}
	}
}
