package httpconn

import (
	"bytes"
	"net"
	"net/http"
	"time"
)

// Parking a connection.
//
// A request whose answer comes later (a held poll) would hold, in
// net/http, a handler goroutine, the connection's background-read
// goroutine, buffers, the request and its contexts: most of an idle
// session's memory. Park takes the connection out of its server's hands
// instead: from the fast loop at no cost (the loop just returns), from
// net/http by a hijack. The handler returns; nothing runs for the
// connection until Respond writes the answer and hands the connection to
// a fast loop for its next request.
//
// What is lost: nothing reads a parked connection, so a client that
// goes away is not seen; Gone peeks at the socket to find out.

// Parkable reports whether Park can take the connection of r, being
// served on w: an HTTP/1.1 keep-alive request served by a Server, in
// its fast loop or by its net/http. free says it is the fast loop's,
// which parks at no cost (net/http's is hijacked, which costs more than
// a short wait saves).
func Parkable(w http.ResponseWriter, r *http.Request) (ok, free bool) {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close {
		return false, false // nothing to keep alive, or not ours to take
	}
	if fw := fastWriterOf(w); fw != nil {
		return !fw.hijacked && !fw.written, true
	}
	_, ok = r.Context().Value(serverKey{}).(*Server)
	return ok, false
}

// Parked is a connection taken out of its server by Park, waiting for
// its answer. Its methods must not be called concurrently; exactly one
// of Respond and Close ends it.
type Parked struct {
	s *Server
	c net.Conn
}

// Park takes the connection of r, being served on w, out of its
// server's hands; the handler must return without writing to w. It
// returns false, having taken nothing, when Parkable says no or the
// hijack fails.
func Park(w http.ResponseWriter, r *http.Request) (*Parked, bool) {
	if ok, _ := Parkable(w, r); !ok {
		return nil, false
	}
	if fw := fastWriterOf(w); fw != nil {
		fw.hijacked = true
		return &Parked{s: fw.s, c: withBuffered(fw.c, fw.br)}, true
	}
	s := r.Context().Value(serverKey{}).(*Server)
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, false
	}
	// Clear net/http's deadlines: the answer may take long.
	_ = c.SetDeadline(time.Time{})
	return &Parked{s: s, c: withBuffered(c, brw.Reader)}, true
}

// withBuffered is c with what br already read from it (pipelined
// requests) in front.
func withBuffered(c net.Conn, br interface {
	Buffered() int
	Peek(int) ([]byte, error)
}) net.Conn {
	if n := br.Buffered(); n > 0 {
		pre, _ := br.Peek(n)
		return &prefixConn{Conn: c, prefix: bytes.Clone(pre)}
	}
	return c
}

// Gone reports whether the client has closed or reset the connection,
// without taking a byte from it and without waiting.
func (p *Parked) Gone() bool { return peerGone(p.c) }

// Close closes the connection: its client is gone, or there is nothing
// to answer.
func (p *Parked) Close() { _ = p.c.Close() }

// Respond writes the answer that write writes to its ResponseWriter, in
// one write bounded by a 10 s deadline, and hands the connection to a
// fast loop for its next request (or closes it once Shutdown has
// begun). When write returns false, or the write fails, the connection
// is closed. It reports whether the answer went out.
func (p *Parked) Respond(write func(http.ResponseWriter) bool) bool {
	w := &fastWriter{s: p.s}
	w.reset(p.c, nil)
	if !write(w) {
		_ = p.c.Close()
		return false
	}
	if err := w.finish(); err != nil {
		_ = p.c.Close()
		return false
	}
	p.s.goServe(p.c, false)
	return true
}

// fastWriterOf returns w's fast loop writer, when w is or wraps one.
func fastWriterOf(w http.ResponseWriter) *fastWriter {
	for {
		switch x := w.(type) {
		case *fastWriter:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
}
