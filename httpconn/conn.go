package httpconn

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"
)

// fastHeadMax is the largest request head the fast path reads: a session
// request's is a few hundred bytes; bigger ones go to net/http with its
// MaxHeaderBytes.
const fastHeadMax = 4096

// fastBodyKeep is the largest body buffer kept for the next request.
const fastBodyKeep = 64 << 10

var fastReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastHeadMax) }}

// serve is a connection's loop. A TLS connection is handshaken first
// when fresh (HTTP/2 goes to net/http).
func (s *Server) serve(fc *fastConn, fresh bool) {
	c := fc.c
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				s.log.Error("panic serving a session request", zap.Any("panic", v), zap.Stack("stack"))
			}
			_ = c.Close()
		}
	}()
	if tc, ok := c.(*tls.Conn); ok && fresh && !s.serveTLS(tc) {
		return
	}
	br := fastReaders.Get().(*bufio.Reader)
	br.Reset(c)
	defer func() {
		br.Reset(nil)
		fastReaders.Put(br)
	}()
	fr := &fastRequest{remote: c.RemoteAddr().String()}
	fr.w.s = s
	for {
		fc.idle.Store(true)
		if s.isClosing() {
			_ = c.Close()
			return
		}
		s.setReadDeadline(c, s.idleTimeout)
		if _, err := br.Peek(1); err != nil {
			_ = c.Close()
			return
		}
		fc.idle.Store(false)
		s.setReadDeadline(c, s.readHeaderTimeout)
		switch s.readRequest(fr, c, br) {
		case readFailed:
			_ = c.Close()
			return
		case readHandOff:
			s.handOff(c, br)
			return
		}
		fr.w.reset(c, br)
		s.handler.ServeHTTP(&fr.w, &fr.req)
		if fr.w.hijacked {
			return // parked: its answer serves the connection on
		}
		if fr.req.Close || fr.skipped || s.isClosing() {
			fr.w.closeAfter = true
		}
		if err := fr.w.finish(); err != nil || fr.w.closeAfter {
			if fr.skipped && err == nil {
				lingerClose(c)
			} else {
				_ = c.Close()
			}
			return
		}
		fr.release()
	}
}

func (s *Server) setReadDeadline(c net.Conn, d time.Duration) {
	if d > 0 {
		_ = c.SetReadDeadline(time.Now().Add(d))
	} else {
		_ = c.SetReadDeadline(time.Time{})
	}
}

// handOff gives the connection, with what br holds, to net/http.
func (s *Server) handOff(c net.Conn, br *bufio.Reader) {
	_ = c.SetDeadline(time.Time{}) // net/http sets its own
	if n := br.Buffered(); n > 0 {
		pre, _ := br.Peek(n)
		c = &prefixConn{Conn: c, prefix: bytes.Clone(pre)}
	}
	s.fallback.give(c)
}

// The outcomes of readRequest.
const (
	readOK = iota
	readHandOff
	readFailed // the connection broke or timed out
)

// fastRequest is a connection's request and response, reused from one
// request to the next.
type fastRequest struct {
	req  http.Request
	url  url.URL
	hdr  http.Header
	body bodyReader
	buf  []byte // the body
	// skipped: the body was left unread (Config.WantBody said no); the
	// connection closes after the answer.
	skipped bool
	w       fastWriter
	// The connection's address, and the last path, host and content
	// type as strings: a client sends the same ones request after
	// request, so each is made once.
	remote, path, host, contentType string
}

// intern returns *last when it spells b, else makes it so.
func intern(last *string, b []byte) string {
	if *last != string(b) { // compiled without an allocation
		*last = string(b)
	}
	return *last
}

// release drops what the request referenced.
func (fr *fastRequest) release() {
	if cap(fr.buf) > fastBodyKeep {
		fr.buf = nil
	}
	fr.body.Reset(nil)
}

// readRequest reads one request head, and its body, into fr.
func (s *Server) readRequest(fr *fastRequest, c net.Conn, br *bufio.Reader) int {
	head, outcome := s.peekHead(br)
	if outcome != readOK {
		return outcome
	}
	h, ok := parseHead(head, s.cfg.MaxBody, s.cfg.Accept)
	if !ok {
		return readHandOff
	}
	if h.method == http.MethodGet && h.contentLength > 0 {
		return readHandOff // a GET with a body: rare, net/http's
	}
	// Everything taken from the head is copied before the body is read:
	// reading may move the bytes in br.
	fr.url = url.URL{Path: intern(&fr.path, h.path), RawQuery: string(h.query)}
	if fr.hdr == nil {
		fr.hdr = make(http.Header, 1)
	}
	if len(h.contentType) > 0 {
		ct := intern(&fr.contentType, h.contentType)
		if v := fr.hdr["Content-Type"]; len(v) == 1 && v[0] == ct {
			// kept from the last request
		} else {
			fr.hdr["Content-Type"] = []string{ct}
		}
	} else {
		delete(fr.hdr, "Content-Type")
	}
	host := intern(&fr.host, h.host)
	if _, err := br.Discard(len(head)); err != nil {
		return readFailed
	}
	fr.body.Reset(nil)
	fr.skipped = false
	var body io.ReadCloser = http.NoBody
	length := h.contentLength
	if length > 0 && s.cfg.WantBody != nil && !s.cfg.WantBody(fr.path, host) {
		// Not worth a byte: the handler answers from the head, and the
		// connection closes with the body unread.
		fr.skipped, length = true, 0
	}
	if length > 0 {
		if s.readTimeout > 0 {
			_ = c.SetReadDeadline(time.Now().Add(s.readTimeout))
		}
		var err error
		if fr.buf, err = readBody(br, fr.buf, int(length)); err != nil {
			return readFailed
		}
		fr.body.Reset(fr.buf)
		body = &fr.body
	}
	_ = c.SetReadDeadline(time.Time{})
	// RequestURI is left empty: nothing on the session paths reads it,
	// and it would be one more string per request.
	fr.req = http.Request{
		Method:        h.method,
		URL:           &fr.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        fr.hdr,
		Body:          body,
		ContentLength: length,
		Close:         h.close,
		Host:          host,
		RemoteAddr:    fr.remote,
	}
	return readOK
}

// peekHead waits until br holds a whole request head and returns it,
// still in br, or the outcome that ends readRequest.
func (s *Server) peekHead(br *bufio.Reader) ([]byte, int) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			if m := s.maxHeaderBytes; m > 0 && i+4 > m {
				return nil, readHandOff
			}
			return buf[:i+4], readOK
		}
		if bytes.Contains(buf, []byte("\n\n")) || br.Buffered() >= fastHeadMax {
			return nil, readHandOff // bare-LF heads, and big ones, are net/http's
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, readHandOff
			}
			if br.Buffered() > 0 && !isTimeout(err) {
				return nil, readHandOff // let net/http answer what it can
			}
			return nil, readFailed
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
