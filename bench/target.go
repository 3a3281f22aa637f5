package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// target is the WebSocket server every workload talks to, on loopback:
// /echo echoes, /stream?size=&rate= pushes numbered messages once the
// client sends its first message (so pushing starts when the workload
// does, not while other sessions are still being created).
type target struct {
	epoch time.Time
	ln    net.Listener
	srv   *http.Server
	base  string // ws://127.0.0.1:port

	ctx    context.Context // cancelled by close; ends every handler
	cancel context.CancelFunc
	wg     sync.WaitGroup // handlers
	served chan struct{}
}

func newTarget(epoch time.Time) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &target{epoch: epoch, ln: ln, base: "ws://" + ln.Addr().String(), ctx: ctx, cancel: cancel, served: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", t.handle(t.echo))
	mux.HandleFunc("/stream", t.rawStream)
	t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(t.served)
		_ = t.srv.Serve(ln)
	}()
	return t, nil
}

// close stops the server and every connection, and waits for them.
func (t *target) close() {
	t.cancel()
	_ = t.srv.Close()
	<-t.served
	t.wg.Wait()
}

func (t *target) handle(fn func(ctx context.Context, c *websocket.Conn, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t.wg.Add(1)
		defer t.wg.Done()
		if t.ctx.Err() != nil {
			http.Error(w, "closing", http.StatusServiceUnavailable)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(4 << 20)
		// The request context ends with the connection; t.ctx at close.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(t.ctx, cancel)
		defer stop()
		// Handlers may read and write without a context (a context with
		// a Done channel costs the library a registration per frame):
		// closing the connection is what ends them.
		stopClose := context.AfterFunc(ctx, func() { _ = c.CloseNow() })
		defer stopClose()
		fn(ctx, c, r)
	}
}

// echo echoes every message, read into one buffer it reuses.
func (t *target) echo(_ context.Context, c *websocket.Conn, _ *http.Request) {
	bg := context.Background() // the connection's close ends the I/O
	buf := make([]byte, 0, 4096)
	for {
		typ, r, err := c.Reader(bg)
		if err != nil {
			return
		}
		if buf, err = readAll(r, buf[:0]); err != nil {
			return
		}
		if err := c.Write(bg, typ, buf); err != nil {
			return
		}
	}
}

// readAll is io.ReadAll into buf.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (t *target) url(mode Mode, size int, perSec float64) string {
	if mode == ModeStream {
		return t.base + "/stream?size=" + strconv.Itoa(size) + "&rate=" + strconv.FormatFloat(perSec, 'f', -1, 64)
	}
	return t.base + "/echo"
}
