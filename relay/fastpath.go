package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The relay's own HTTP/1.1 loop for session requests.
//
// Every message costs a client two requests (its send and the poll that
// brings the answer), and net/http spends on each a background-read
// goroutine with its own read syscall, contexts, a Request with header
// maps, and deadline timers: on a 2-core machine that was a third of the
// relay's CPU per echo. Listen serves the plain session requests of a
// connection itself, in one goroutine that parses the request head,
// calls the same handler chain net/http would with a small
// ResponseWriter, and writes the answer in one write; a held poll parks
// at once and its connection goes on in the goroutine that answers it.
//
// It takes only what it parses exactly: GET or POST of HTTP/1.1 on
// /s/, /j/ or /c/ with a plain socket id, one Host, at most one
// Content-Length within MaxBody, a head within 4 KiB ending in CRLF CRLF,
// valid header names and values, and no Transfer-Encoding, Expect or
// Upgrade. At anything else (another path or method, a header it does
// not take, HTTP/2 over TLS) the connection, with the bytes already read,
// goes to net/http through the listener Listen returns, for the rest of
// its life; net/http then answers, or refuses, exactly as it would have.
//
// A body is paid for only when it is wanted: the socket is looked up
// from the head (its path and Host) first, and a request for no live
// session on that host is answered from the head with the body unread
// and the connection closed (lingerClose); a wanted body's buffer grows
// with the bytes that arrive (readBody).

// ListenConfig configures Listen. Zero timeouts mean none, as in
// http.Server.
type ListenConfig struct {
	// Handler serves the requests taken; give it the same handler as the
	// http.Server that serves the returned listener, so both count and
	// route alike.
	Handler http.Handler
	// ReadHeaderTimeout bounds a request head (and a TLS handshake),
	// ReadTimeout a whole request, IdleTimeout the wait for the next
	// request on a kept-alive connection.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes is the server's: a longer head goes to net/http,
	// which refuses it. The fast path reads at most 4 KiB of head anyway.
	MaxHeaderBytes int
	// Log gets handler panics. Default: the relay's logger.
	Log *zap.Logger
}

// fastHeadMax is the largest request head the fast path reads: a session
// request's is a few hundred bytes; bigger ones go to net/http with its
// MaxHeaderBytes.
const fastHeadMax = 4096

// fastBodyKeep is the largest body buffer kept for the next request.
const fastBodyKeep = 64 << 10

// fastServer runs the fast path of one listener.
type fastServer struct {
	r        *Relay
	ln       net.Listener
	cfg      ListenConfig
	log      *zap.Logger
	fallback *handback // connections for net/http

	closeLn sync.Once
	done    chan struct{} // closed with the listener

	// closing is set under mu, so that track never registers a loop once
	// shutdown waits; loops read it without the lock, per request.
	mu      sync.Mutex
	closing atomic.Bool
	conns   map[*fastConn]struct{}
	wg      sync.WaitGroup // the accept loop and every connection's loop
}

// fastConn is a connection in the fast path.
type fastConn struct {
	c    net.Conn
	idle atomic.Bool // waiting for a request: Shutdown may close it
}

// Listen serves the session requests of ln's connections itself and
// returns the listener of every other connection, which the caller
// serves with an http.Server whose handler is cfg.Handler (see the
// comment above). Closing the returned listener closes ln. Relay.Shutdown
// closes the fast path's idle connections and waits for the others.
// Listen may be called once.
func (r *Relay) Listen(ln net.Listener, cfg ListenConfig) net.Listener {
	if cfg.Log == nil {
		cfg.Log = r.log
	}
	f := &fastServer{
		r:        r,
		ln:       ln,
		cfg:      cfg,
		log:      cfg.Log,
		fallback: newHandback(),
		done:     make(chan struct{}),
		conns:    make(map[*fastConn]struct{}),
	}
	f.fallback.addr = ln.Addr()
	r.fast.Store(f)
	f.wg.Add(1)
	go f.acceptLoop()
	return &fallbackListener{handback: f.fallback, f: f}
}

// fallbackListener is the listener Listen returns.
type fallbackListener struct {
	*handback
	f *fastServer
}

// Close stops accepting: ln is closed, and so is this listener.
func (l *fallbackListener) Close() error {
	l.f.closeListener()
	return nil
}

func (f *fastServer) closeListener() {
	f.closeLn.Do(func() {
		close(f.done)
		_ = f.ln.Close()
		_ = f.fallback.Close()
	})
}

func (f *fastServer) acceptLoop() {
	defer f.wg.Done()
	var delay time.Duration
	for {
		c, err := f.ln.Accept()
		if err != nil {
			select {
			case <-f.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				f.closeListener()
				return
			}
			// Out of descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			f.log.Warn("accept", zap.Error(err), zap.Duration("retry_in", delay))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-f.done:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		f.goServe(c, true)
	}
}

// track registers a connection's loop; false once Shutdown has begun.
func (f *fastServer) track(fc *fastConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return false
	}
	f.conns[fc] = struct{}{}
	f.wg.Add(1)
	return true
}

func (f *fastServer) untrack(fc *fastConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
	f.wg.Done()
}

func (f *fastServer) isClosing() bool { return f.closing.Load() }

// goContinue serves, in a new goroutine, a connection whose parked poll
// was just answered.
func (f *fastServer) goContinue(c net.Conn) { f.goServe(c, false) }

// goServe serves c in a goroutine tracked for Shutdown (fresh: c is new
// from the listener), or closes it once Shutdown has begun.
func (f *fastServer) goServe(c net.Conn, fresh bool) {
	fc := &fastConn{c: c}
	if !f.track(fc) {
		_ = c.Close()
		return
	}
	go func() {
		defer f.untrack(fc)
		f.serve(fc, fresh)
	}()
}

// shutdown stops accepting, closes idle connections, lets the others
// finish the request in hand, and closes what is left when ctx ends.
func (f *fastServer) shutdown(ctx context.Context) error {
	f.closeListener()
	f.mu.Lock()
	f.closing.Store(true)
	for fc := range f.conns {
		if fc.idle.Load() {
			_ = fc.c.Close()
		}
	}
	f.mu.Unlock()
	waited := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	for fc := range f.conns {
		_ = fc.c.Close()
	}
	f.mu.Unlock()
	<-waited // every loop ends once its connection is closed
	return ctx.Err()
}

var fastReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastHeadMax) }}

// serve is a connection's loop. A TLS connection is handshaken first
// when fresh (HTTP/2 goes to net/http).
func (f *fastServer) serve(fc *fastConn, fresh bool) {
	c := fc.c
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				f.log.Error("panic serving a session request", zap.Any("panic", v), zap.Stack("stack"))
			}
			_ = c.Close()
		}
	}()
	if tc, ok := c.(*tls.Conn); ok && fresh {
		if d := f.cfg.ReadHeaderTimeout; d > 0 {
			_ = c.SetDeadline(time.Now().Add(d))
		}
		if err := tc.Handshake(); err != nil {
			_ = c.Close()
			return
		}
		_ = c.SetDeadline(time.Time{})
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			f.fallback.give(c)
			return
		}
	}
	br := fastReaders.Get().(*bufio.Reader)
	br.Reset(c)
	defer func() {
		br.Reset(nil)
		fastReaders.Put(br)
	}()
	fr := &fastRequest{remote: c.RemoteAddr().String()}
	fr.w.fr = fr
	for {
		fc.idle.Store(true)
		if f.isClosing() {
			_ = c.Close()
			return
		}
		f.setReadDeadline(c, f.cfg.IdleTimeout)
		if _, err := br.Peek(1); err != nil {
			_ = c.Close()
			return
		}
		fc.idle.Store(false)
		f.setReadDeadline(c, f.cfg.ReadHeaderTimeout)
		switch f.readRequest(fr, c, br) {
		case readFailed:
			_ = c.Close()
			return
		case readHandOff:
			f.handOff(c, br)
			return
		}
		fr.w.reset(c, br)
		f.cfg.Handler.ServeHTTP(&fr.w, &fr.req)
		if fr.w.hijacked {
			return // a parked poll: its answer serves the connection on
		}
		if fr.req.Close || fr.skipped || f.isClosing() {
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

func (f *fastServer) setReadDeadline(c net.Conn, d time.Duration) {
	if d > 0 {
		_ = c.SetReadDeadline(time.Now().Add(d))
	} else {
		_ = c.SetReadDeadline(time.Time{})
	}
}

// handOff gives the connection, with what br holds, to net/http.
func (f *fastServer) handOff(c net.Conn, br *bufio.Reader) {
	_ = c.SetDeadline(time.Time{}) // net/http sets its own
	if n := br.Buffered(); n > 0 {
		pre, _ := br.Peek(n)
		c = &prefixConn{Conn: c, prefix: bytes.Clone(pre)}
	}
	f.fallback.give(c)
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
	// skipped: the body was left unread (no such session on this host);
	// the connection closes after the answer.
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

// bodyReader is a request body that costs no allocation to attach.
type bodyReader struct {
	bytes.Reader
	b []byte
}

func (*bodyReader) Close() error { return nil }

// Reset reads b from its start.
func (r *bodyReader) Reset(b []byte) {
	r.b = b
	r.Reader.Reset(b)
}

// Unread is what is left to read, without a copy (jsonp reads it so).
func (r *bodyReader) Unread() []byte { return r.b[len(r.b)-r.Len():] }

// bodyChunk is the least a body buffer grows by.
const bodyChunk = 4 << 10

// readBody reads an n-byte body from br into buf (from its start). The
// buffer grows with the bytes that arrive, doubling, never to more than
// n: a head announcing megabytes costs nothing until they come, and
// then at most twice what came.
func readBody(br *bufio.Reader, buf []byte, n int) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(cap(buf), bodyChunk)))
		}
		m, err := br.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			return buf, err
		}
	}
	return buf, nil
}

// lingerTime and lingerBytes bound how long, and how much, lingerClose
// drains: as net/http does, so that the answer is not lost to the reset
// a close with unread data sends.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// lingerClose closes a connection whose request body was left unread:
// the answer is followed by a FIN, then what the client still sends is
// read and dropped for a little while (no memory: io.Discard), so that
// the close does not reset the connection before the client read the
// answer.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.CopyN(io.Discard, c, lingerBytes)
	}
	_ = c.Close()
}

// readRequest reads one request head, and its body, into fr.
func (f *fastServer) readRequest(fr *fastRequest, c net.Conn, br *bufio.Reader) int {
	var head []byte
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head = buf[:i+4]
			if m := f.cfg.MaxHeaderBytes; m > 0 && len(head) > m {
				return readHandOff
			}
			break
		}
		if bytes.Contains(buf, []byte("\n\n")) || br.Buffered() >= fastHeadMax {
			return readHandOff // bare-LF heads, and big ones, are net/http's
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return readHandOff
			}
			if br.Buffered() > 0 && !isTimeout(err) {
				return readHandOff // let net/http answer what it can
			}
			return readFailed
		}
	}
	h, ok := parseHead(head, f.r.cfg.MaxBody)
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
	if length > 0 {
		if _, ok := f.r.sessionAt(string(h.path[3:]), host); !ok {
			// Not worth a byte: the handler answers 403 from the head,
			// and the connection closes with the body unread.
			fr.skipped, length = true, 0
		}
	}
	if length > 0 {
		if f.cfg.ReadTimeout > 0 {
			_ = c.SetReadDeadline(time.Now().Add(f.cfg.ReadTimeout))
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// head is what parseHead takes from a request head; its slices point
// into the head.
type head struct {
	method        string // GET or POST
	target        []byte
	path, query   []byte
	host          []byte
	contentType   []byte
	contentLength int64
	close         bool
}

// parseHead parses a request head ending in CRLF CRLF. It returns false
// for anything the fast path does not take (see the comment at the top).
func parseHead(b []byte, maxBody int64) (head, bool) {
	var h head
	line, rest, ok := cutLine(b)
	if !ok {
		return h, false
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		h.method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("POST ")):
		h.method, line = http.MethodPost, line[5:]
	default:
		return h, false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return h, false
	}
	h.target = line[:sp]
	if !parseTarget(&h) {
		return h, false
	}
	hosts, lengths := 0, 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return h, false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validFieldName(line[:colon]) {
			return h, false // obs-fold, no name, bad name: net/http's
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validFieldValue(value) {
			return h, false
		}
		switch {
		case asciiEqualFold(name, "host"):
			hosts++
			if hosts > 1 || !validHost(value) {
				return h, false
			}
			h.host = value
		case asciiEqualFold(name, "content-length"):
			lengths++
			n, ok := parseLength(value)
			if lengths > 1 || !ok || n > maxBody {
				return h, false
			}
			h.contentLength = n
		case asciiEqualFold(name, "content-type"):
			if h.contentType != nil {
				return h, false
			}
			h.contentType = value
		case asciiEqualFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = trimOWS(tok)
				switch {
				case asciiEqualFold(tok, "close"):
					h.close = true
				case asciiEqualFold(tok, "upgrade"):
					return h, false
				}
			}
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "expect"),
			asciiEqualFold(name, "upgrade"), asciiEqualFold(name, "http2-settings"):
			return h, false
		}
	}
	if hosts != 1 || len(rest) != 0 {
		return h, false
	}
	return h, true
}

// parseTarget splits h.target into a session path and its query.
func parseTarget(h *head) bool {
	t := h.target
	if len(t) < 4 || t[0] != '/' || t[2] != '/' || (t[1] != 's' && t[1] != 'j' && t[1] != 'c') {
		return false
	}
	path, query := t, []byte(nil)
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		path, query = t[:i], t[i+1:]
	}
	id := path[3:]
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	for _, c := range query {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	h.path, h.query = path, query
	return true
}

// cutLine cuts b at its first CRLF; a bare LF or CR fails.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validFieldName reports whether b is an RFC 9110 token.
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !isTokenByte[c] {
			return false
		}
	}
	return true
}

var isTokenByte = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validFieldValue refuses control bytes other than tab.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost takes the host[:port] spellings of names and addresses only;
// net/http judges the rest.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// parseLength reads a Content-Length: digits only, no sign, no overflow.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// fastWriter is the fast path's ResponseWriter: the answer is collected
// and written in one write when the handler returns or flushes.
type fastWriter struct {
	fr         *fastRequest
	c          net.Conn
	br         *bufio.Reader
	h          http.Header
	status     int
	body       []byte
	out        []byte
	written    bool // the answer went out (a flush)
	hijacked   bool
	closeAfter bool
}

func (w *fastWriter) reset(c net.Conn, br *bufio.Reader) {
	w.c, w.br = c, br
	if w.h == nil {
		w.h = make(http.Header, 6)
	} else {
		clear(w.h)
	}
	w.status = 0
	w.body = w.body[:0]
	w.written, w.hijacked, w.closeAfter = false, false, false
}

// Header is the answer's header map.
func (w *fastWriter) Header() http.Header { return w.h }

// WriteHeader sets the status; the first final one counts.
func (w *fastWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

// Write appends to the body, which goes out when the handler returns.
func (w *fastWriter) Write(b []byte) (int, error) {
	if w.written || w.hijacked {
		return 0, http.ErrBodyNotAllowed
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

// FlushError writes the answer now (http.ResponseController's Flush).
// Nothing may be written after.
func (w *fastWriter) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.written {
		return nil
	}
	return w.writeOut()
}

// Flush is FlushError for http.Flusher.
func (w *fastWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection to the handler (a parked poll). The
// reader keeps bytes of pipelined requests; the handler takes them
// before it returns.
func (w *fastWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.written || w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	return w.c, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.c, 16)), nil
}

// finish writes the answer unless a flush did.
func (w *fastWriter) finish() error {
	if w.written {
		return nil
	}
	return w.writeOut()
}

func (w *fastWriter) writeOut() error {
	w.written = true
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	b := w.out[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	for k, vs := range w.h {
		if k == "Content-Length" || k == "Connection" || k == "Date" {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			for i := 0; i < len(v); i++ {
				c := v[i]
				if c == '\r' || c == '\n' {
					c = ' ' // as net/http's Header.Write does
				}
				b = append(b, c)
			}
			b = append(b, "\r\n"...)
		}
	}
	if status != http.StatusNoContent && status != http.StatusNotModified {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(w.body)), 10)
		b = append(b, "\r\n"...)
	}
	if w.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "Date: "...)
	b = appendDate(b)
	b = append(b, "\r\n\r\n"...)
	if status != http.StatusNoContent && status != http.StatusNotModified {
		b = append(b, w.body...)
	}
	w.out = b
	if cap(w.out) > fastBodyKeep {
		w.out = nil
	}
	if cap(w.body) > fastBodyKeep {
		w.body = nil
	}
	_ = w.c.SetWriteDeadline(time.Now().Add(parkWriteTimeout))
	_, err := w.c.Write(b)
	if err == nil {
		_ = w.c.SetWriteDeadline(time.Time{})
	}
	return err
}

// dateCache is the Date header of the current second.
type dateCache struct {
	sec int64
	s   string
}

var currentDate atomic.Pointer[dateCache]

func appendDate(b []byte) []byte {
	now := time.Now()
	d := currentDate.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateCache{sec: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
		currentDate.Store(d)
	}
	return append(b, d.s...)
}

// isFast reports whether w is, or wraps, the fast path's writer.
func isFast(w http.ResponseWriter) bool {
	for {
		switch x := w.(type) {
		case *fastWriter:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}
