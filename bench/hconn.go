package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// hconn is a minimal HTTP/1.1 keep-alive client connection for a
// session's data path (/s, /j, /c). net/http's Transport hands every
// request to two goroutines per connection; on a 2-core machine that
// the relay shares with the load tool, that cost showed up as the
// tool's own CPU, so the hot path writes the request and parses the
// answer in the caller's goroutine. One goroutine uses an hconn at a
// time.
type hconn struct {
	addr string // where to dial
	host string // the Host header: the session's {uniq}.{fqdn}
	tls  bool

	// mu guards writes of c against the cancel watch, which reads it;
	// the owning goroutine reads c without it.
	mu   sync.Mutex
	c    net.Conn
	br   *bufio.Reader
	wbuf []byte

	// The cancel watch fails the I/O in progress when its context ends.
	// It is registered once per context rather than per request (a
	// registration per request contended on the shared context's lock).
	watched   context.Context
	stopWatch func() bool
}

func newHconn(scheme, host string) *hconn {
	h := &hconn{host: host, tls: scheme == "https"}
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "80"
		if h.tls {
			port = "443"
		}
		addr = net.JoinHostPort(host, port)
	}
	h.addr = sessionAddr(addr)
	return h
}

// longAgo is a deadline in the past, which fails pending I/O at once.
var longAgo = time.Unix(1, 0)

// get sends GET pathQuery, waits at most timeout, and copies the answer's
// body into body. A request on a reused connection that the server had
// closed is retried once on a new one (every request here is safe to
// repeat: sends carry n, polls carry the ack).
func (h *hconn) get(ctx context.Context, pathQuery string, timeout time.Duration, body *bytes.Buffer) (int, error) {
	return h.getBytes(ctx, []byte(pathQuery), timeout, body)
}

// getBytes is get with the path and query in a buffer the caller
// reuses.
func (h *hconn) getBytes(ctx context.Context, pathQuery []byte, timeout time.Duration, body *bytes.Buffer) (int, error) {
	for attempt := 0; ; attempt++ {
		reused := h.c != nil
		if !reused {
			if err := h.dial(ctx, timeout); err != nil {
				return 0, err
			}
		}
		st, err := h.roundTrip(ctx, pathQuery, timeout, body)
		if err == nil {
			return st, nil
		}
		h.close()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if !reused || attempt > 0 || !staleConn(err) {
			return 0, err
		}
	}
}

// staleConn reports whether err looks like a kept-alive connection the
// server closed in the meantime.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (h *hconn) dial(ctx context.Context, timeout time.Duration) error {
	d := net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", h.addr, err)
	}
	if h.tls {
		name, _, _ := net.SplitHostPort(h.addr)
		if hn, _, err := net.SplitHostPort(h.host); err == nil {
			name = hn
		}
		tc := tls.Client(c, &tls.Config{ServerName: name})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return fmt.Errorf("tls %s: %w", h.addr, err)
		}
		c = tc
	}
	h.mu.Lock()
	h.c = c
	h.mu.Unlock()
	if h.br == nil {
		h.br = bufio.NewReaderSize(c, 16<<10)
	} else {
		h.br.Reset(c)
	}
	return nil
}

// watch makes sure ctx's end fails this connection's I/O.
func (h *hconn) watch(ctx context.Context) {
	if ctx == h.watched || ctx.Done() == nil {
		return
	}
	h.unwatch()
	h.watched = ctx
	h.stopWatch = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.c != nil {
			_ = h.c.SetDeadline(longAgo)
		}
	})
}

func (h *hconn) unwatch() {
	if h.stopWatch != nil {
		h.stopWatch()
		h.stopWatch, h.watched = nil, nil
	}
}

func (h *hconn) roundTrip(ctx context.Context, pathQuery []byte, timeout time.Duration, body *bytes.Buffer) (int, error) {
	c := h.c
	h.watch(ctx)
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	// Checked after the deadline is set: a cancel from here on sets it
	// in the past, one before is seen here.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	defer func() {
		if ctx.Err() != nil {
			h.close() // its deadline may be in the past now
		}
	}()
	h.wbuf = append(h.wbuf[:0], "GET "...)
	h.wbuf = append(h.wbuf, pathQuery...)
	h.wbuf = append(h.wbuf, " HTTP/1.1\r\nHost: "...)
	h.wbuf = append(h.wbuf, h.host...)
	h.wbuf = append(h.wbuf, "\r\nUser-Agent: polysocket-bench\r\n\r\n"...)
	if _, err := c.Write(h.wbuf); err != nil {
		return 0, err
	}
	status, err := h.readResponse(body)
	if err != nil {
		return 0, err
	}
	return status, nil
}

var errResponse = errors.New("malformed HTTP response")

// readResponse reads an answer's status line, headers and body. It
// parses only what the relay's answers need (Content-Length, chunked
// bodies, Connection: close) and allocates nothing per answer, so the
// tool's own allocations stay out of the relay's way.
func (h *hconn) readResponse(body *bytes.Buffer) (int, error) {
	line, err := h.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 201 Created\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, errResponse
	}
	keep := line[7] == '1'
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, errResponse
	}
	length, chunked := int64(-1), false
	for n := 0; ; n++ {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if n > 100 {
			return 0, errResponse
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, errResponse
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(v), 10, 64); err != nil || length < 0 {
				return 0, errResponse
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			keep = keep && !bytes.EqualFold(v, []byte("close"))
		}
	}
	body.Reset()
	var r io.Reader
	switch {
	case chunked:
		r = httputil.NewChunkedReader(h.br)
	case length >= 0:
		r = io.LimitReader(h.br, length)
	default:
		r, keep = h.br, false // the body runs to the end of the connection
	}
	if _, err := body.ReadFrom(io.LimitReader(r, 8<<20)); err != nil {
		return 0, err
	}
	if chunked {
		// The chunked reader stops at the last chunk; a trailer-less
		// answer ends with one more CRLF.
		if _, err := h.br.ReadSlice('\n'); err != nil {
			return 0, err
		}
	}
	if !keep {
		h.close()
	}
	return status, nil
}

// close drops the connection; the next request dials again.
func (h *hconn) close() {
	if h.c != nil {
		h.c.Close()
		h.mu.Lock()
		h.c = nil
		h.mu.Unlock()
	}
}

// release closes the connection and drops the cancel watch.
func (h *hconn) release() {
	h.close()
	h.unwatch()
}
