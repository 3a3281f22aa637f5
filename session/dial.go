package session

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// handshakeTransport is the http.RoundTripper of the target dial: it
// carries exactly one WebSocket handshake per connection and hands the
// connection over. net/http's Transport would do the same with a
// persistConn, two goroutines and a 4 KiB reader and writer per dial,
// all thrown away at the 101; a relay dials a target for every session,
// so this one keeps the handshake to one small reader and one write.
// Redirects stay the http.Client's business (CheckRedirect refuses them).
type handshakeTransport struct {
	// dial opens the TCP connection; the relay's address guard lives
	// here, so every target connection passes it.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// tls is cloned for every wss:// target; nil means the system roots.
	tls *tls.Config
}

// handshakeReadSize is the reader the response head is parsed from. A
// handshake answer is a few hundred bytes; textproto copes with longer
// lines, so this bounds nothing but the garbage per dial.
const handshakeReadSize = 1024

// longAgo is a deadline in the past: it fails pending I/O at once.
var longAgo = time.Unix(1, 0)

// RoundTrip dials req's host, writes req and reads the answer's head,
// all within req's context. A 101 answer's Body is the connection
// itself (an io.ReadWriteCloser, as the WebSocket library expects); any
// other answer's Body reads what follows the head and closes the
// connection.
func (t *handshakeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close() // a handshake has none; RoundTrip must close it
	}
	ctx := req.Context()
	conn, err := t.dialURL(ctx, req.URL)
	if err != nil {
		return nil, err
	}
	// The context bounds the handshake: its deadline becomes the
	// connection's, and a cancel fails the I/O in flight.
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	if req.URL.Scheme == "https" {
		tc := tls.Client(conn, t.tlsConfig(req.URL.Hostname()))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(err)
		}
		conn = tc
	}
	// A bytes.Buffer is an io.ByteWriter, so req.Write adds no bufio
	// writer of its own, and the request leaves in one write.
	var head bytes.Buffer
	if err := req.Write(&head); err != nil {
		return fail(err)
	}
	if _, err := conn.Write(head.Bytes()); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, handshakeReadSize)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// The caller reads a little of the body for its error; the
		// handshake deadline still bounds that read.
		stop()
		resp.Body = &refusedBody{ReadCloser: resp.Body, conn: conn}
		return resp, nil
	}
	if !stop() {
		// The context ended as the answer came: the deadline is in the
		// past now, so the connection is of no use.
		conn.Close()
		return nil, ctx.Err()
	}
	return upgraded(req, resp, conn, br)
}

// dialURL opens the TCP connection to u's host.
func (t *handshakeTransport) dialURL(ctx context.Context, u *url.URL) (net.Conn, error) {
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	case u.Scheme == "http":
		port = "80"
	default:
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	return t.dial(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
}

// tlsConfig is the TLS configuration of a dial to host.
func (t *handshakeTransport) tlsConfig(host string) *tls.Config {
	cfg := &tls.Config{}
	if t.tls != nil {
		cfg = t.tls.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg
}

// upgraded makes a 101 answer's Body the connection, with what br read
// past the head, and leaves it in req's upgradedSlot.
func upgraded(req *http.Request, resp *http.Response, conn net.Conn, br *bufio.Reader) (*http.Response, error) {
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, err
	}
	u := &upgradedConn{conn: conn}
	if slot, ok := req.Context().Value(upgradedSlotKey{}).(*upgradedSlot); ok {
		slot.u = u
	}
	if br.Buffered() > 0 {
		// The target spoke right after its answer; those bytes are the
		// first of the WebSocket stream.
		u.br = br
	}
	resp.Body = u
	return resp, nil
}

// upgradedConn is a 101 answer's body: the connection, after the bytes
// the head's reader already took from it.
type upgradedConn struct {
	conn net.Conn
	br   *bufio.Reader // nil once drained
	// beforeRead, if set, runs before every read: the session's
	// flushAnswer. Set before the session's read loop starts.
	beforeRead func()
}

// upgradedSlot is where RoundTrip leaves the connection it upgraded,
// for the dial that passed it in the request's context.
type upgradedSlot struct{ u *upgradedConn }

type upgradedSlotKey struct{}

func (u *upgradedConn) Read(p []byte) (int, error) {
	if u.beforeRead != nil {
		u.beforeRead()
	}
	if u.br != nil {
		if n := u.br.Buffered(); len(p) > n {
			p = p[:n]
		}
		n, err := u.br.Read(p)
		if u.br.Buffered() == 0 {
			u.br = nil // let the reader go
		}
		return n, err
	}
	return u.conn.Read(p)
}

func (u *upgradedConn) Write(p []byte) (int, error) { return u.conn.Write(p) }

func (u *upgradedConn) Close() error { return u.conn.Close() }

// refusedBody is the body of an answer that is not a 101; closing it
// closes the connection, which carries nothing else.
type refusedBody struct {
	io.ReadCloser
	conn net.Conn
}

func (b *refusedBody) Close() error {
	// The connection goes first: closing the body drains it, which for
	// a body that runs to the end of the connection would wait.
	err := b.conn.Close()
	_ = b.ReadCloser.Close()
	return err
}
