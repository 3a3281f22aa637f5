package relay

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/jsonp"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/zap"
)

// request is what every session endpoint starts from.
type request struct {
	w  http.ResponseWriter
	cb string
	p  jsonp.Params // from paramPool: done gives it back
	s  *session.Session
}

// paramPool reuses parameter maps: a map per request was the largest
// allocation of the data path. Only known names enter a map (see
// jsonp.Names), so none grows past a handful of entries.
var paramPool = sync.Pool{New: func() any { return make(jsonp.Params, 8) }}

// maxPooledParams is the most entries a map may hold to go back to
// paramPool: more than any endpoint knows.
const maxPooledParams = 8

// The parameters each endpoint knows (docs/PROTOCOL.md); "_" is a cache
// buster, accepted and ignored. Any other name is a 400 params.
var (
	sendNames  = jsonp.Names{"t", "d", "n", "f", "cb", "_"}
	closeNames = jsonp.Names{"code", "reason", "cb", "_"}
	pollNames  = jsonp.Names{"ttl", "a", "cb", "_"}
)

// done returns the request's parameter map; nothing may read q.p after.
func (q *request) done() {
	if q.p != nil && len(q.p) <= maxPooledParams {
		paramPool.Put(q.p)
	}
	q.p = nil
}

// routes is where the session endpoints are decided, once: the letter
// of /{letter}/{socket} and its handler. ServeHTTP and Accept read it.
var routes = [...]struct {
	letter byte
	handle func(*Relay, http.ResponseWriter, *http.Request)
}{
	{'s', (*Relay).handleSend},
	{'c', (*Relay).handleClose},
	{'j', (*Relay).handlePoll},
}

// route returns the handler of a session endpoint's path, or nil: only
// clean paths, so that the mux redirects the others (/s/../x) to their
// clean form.
func route[P string | []byte](path P) func(*Relay, http.ResponseWriter, *http.Request) {
	if len(path) < 4 || path[0] != '/' || path[2] != '/' || !cleanID(path[3:]) {
		return nil
	}
	for _, rt := range routes {
		if rt.letter == path[1] {
			return rt.handle
		}
	}
	return nil
}

// Accept reports whether path is a session endpoint's: the requests a
// connection server (httpconn.Config.Accept) hands to the relay's own
// handlers.
func Accept(path []byte) bool { return route(path) != nil }

// WantBody reports whether a request's body is worth reading: its path
// (one Accept took) names a live session on its Host. It is the
// connection server's httpconn.Config.WantBody; the handler answers the
// others from the head.
func (r *Relay) WantBody(path, host string) bool {
	if len(path) < 3 {
		return false
	}
	_, ok := r.sessionAt(path[3:], host)
	return ok
}

// IsEndpoint is Accept for a path string (a front handler's choice).
func IsEndpoint(path string) bool { return route(path) != nil }

// Patterns are the ServeMux patterns of the session endpoints (/s/, /c/,
// /j/), to mount the relay's Handler at.
func Patterns() []string {
	ps := make([]string, len(routes))
	for i, rt := range routes {
		ps[i] = "/" + string(rt.letter) + "/"
	}
	return ps
}

// ServeHTTP serves the session endpoints from the routes table: a
// ServeMux costs a tree walk and a few allocations per request, and so
// would any path it matched.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if h := route(req.URL.Path); h != nil {
		h(r, w, req)
		return
	}
	r.mux.ServeHTTP(w, req) // anything else: the mux's 404s and redirects
}

// fail answers an error with the seed protocol's status, JSONP or not.
func (q *request) fail(code control.Code, msg string) {
	jsonp.WriteError(q.w, q.cb, code.HTTPStatus(), code, msg)
}

// endpoint is what begin needs to know of a session endpoint.
type endpoint struct {
	prefix  string // "/s/", "/c/" or "/j/"
	methods string // as the Allow header lists them
	names   jsonp.Names
}

var (
	sendEndpoint  = endpoint{"/s/", methodsGetPost, sendNames}
	closeEndpoint = endpoint{"/c/", methodsGetPost, closeNames}
	pollEndpoint  = endpoint{"/j/", methodsGet, pollNames}
)

// begin parses a session request: method, parameters, callback, socket.
// It answers the error itself and returns false when the request is bad.
// When it returns true, the caller must call q.done.
//
// Nothing that costs more than the request head is done before the
// socket is known on its own host: the body is read only then, and an
// unknown socket is answered without reading it.
func (r *Relay) begin(q *request, req *http.Request, ep endpoint) bool {
	w := q.w
	if req.Method == http.MethodOptions {
		h := w.Header()
		jsonp.SetHeaders(h)
		h.Set("Access-Control-Allow-Methods", ep.methods)
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	q.p = paramPool.Get().(jsonp.Params)
	clear(q.p)
	err := jsonp.ParseQuery(q.p, req, ep.names)
	if !r.takeCallback(q) {
		return false
	}
	if !methodAllowed(req.Method, ep.methods) {
		q.done()
		w.Header().Set("Allow", ep.methods)
		q.fail(control.CodeMethod, req.Method+" is not allowed here; use "+strings.ReplaceAll(ep.methods, ", ", " or "))
		return false
	}
	if err != nil {
		q.done()
		r.failParse(q, err)
		return false
	}
	s, ok := r.sessionAt(strings.TrimPrefix(req.URL.Path, ep.prefix), req.Host)
	if !ok {
		q.done()
		if req.ContentLength != 0 && req.ProtoMajor == 1 {
			// The body stays unread: the connection cannot be reused.
			// (HTTP/2 resets the stream alone; a close there would end
			// every other stream's connection.)
			w.Header().Set("Connection", "close")
		}
		q.fail(control.CodeSocket, "unknown or closed socket")
		return false
	}
	q.s = s
	// The body may carry parameters too, the callback among them.
	err = jsonp.ParseBody(q.p, req, r.cfg.MaxBody, ep.names)
	if !r.takeCallback(q) {
		return false
	}
	if err != nil {
		q.done()
		r.failParse(q, err)
		return false
	}
	return true
}

// takeCallback sets q.cb from the parameters read so far; an invalid
// callback is answered (and q.done called) here, false returned.
func (r *Relay) takeCallback(q *request) bool {
	cb, ok := q.p.Callback()
	if !ok {
		q.done()
		jsonp.WriteBadCallback(q.w)
		return false
	}
	q.cb = cb
	return true
}

// sessionAt returns the live session with socket id when host is that
// session's own subdomain, {uniq}.{relay fqdn}: a socket id arriving on
// any other host (the router's, the relay's bare name, a name pointed
// at the relay by someone else) is as unknown as a wrong id.
func (r *Relay) sessionAt(id, host string) (*session.Session, bool) {
	if id == "" || len(id) > 64 || strings.Contains(id, "/") {
		return nil, false
	}
	s, err := r.reg.Get(id)
	if err != nil || !r.isSessionHost(s.Uniq, host) {
		return nil, false
	}
	return s, true
}

// isSessionHost reports whether host (a Host header) names {uniq}.{relay
// fqdn}, case-insensitively. A port, when the header has one, must be
// the fqdn's (or 80 or 443 when the fqdn has none); a header without a
// port is taken, as a front proxy may drop it.
func (r *Relay) isSessionHost(uniq, host string) bool {
	name, port := splitHostPort(host)
	switch {
	case strings.HasSuffix(host, ":"):
		return false // a colon without a port
	case port == "" || port == r.fqdnPort:
	case r.fqdnPort == "" && (port == "80" || port == "443"):
	default:
		return false
	}
	base := r.fqdnName
	return len(name) == len(uniq)+1+len(base) && name[len(uniq)] == '.' &&
		strings.EqualFold(name[:len(uniq)], uniq) && strings.EqualFold(name[len(uniq)+1:], base)
}

// splitHostPort splits host[:port] (with [v6] brackets kept in the
// name) without failing: a malformed one simply matches no session.
func splitHostPort(h string) (name, port string) {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || i < strings.LastIndexByte(h, ']') {
		return h, ""
	}
	return h[:i], h[i+1:]
}

// failParse answers a parameter error. It is apart from begin so that
// the error's target variable, which escapes, costs nothing without an
// error.
func (r *Relay) failParse(q *request, err error) {
	var pe *jsonp.ParamError
	switch {
	case errors.Is(err, jsonp.ErrBodyTooLarge):
		q.fail(control.CodeTooLarge, "request body over "+strconv.FormatInt(r.cfg.MaxBody, 10)+" bytes")
	case errors.As(err, &pe):
		q.fail(control.CodeParams, pe.Error())
	default:
		q.fail(control.CodeParams, err.Error())
	}
}

// cleanID reports whether a path's part after /s/ has no path syntax
// that ServeMux would clean.
func cleanID[P string | []byte](id P) bool {
	if string(id) == "." || string(id) == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] == '/' {
			return false
		}
	}
	return true
}

// The methods each endpoint allows, as the Allow header lists them.
const (
	methodsGetPost = "GET, POST"
	methodsGet     = "GET"
)

func methodAllowed(m, methods string) bool {
	switch m {
	case http.MethodGet:
		return true // every endpoint takes GET
	case http.MethodPost:
		return methods == methodsGetPost
	}
	return false
}

var okBody = []byte(`{"ok":true}`)

// handleSend is GET|POST /s/{socket}: one message or fragment to the
// target.
func (r *Relay) handleSend(w http.ResponseWriter, req *http.Request) {
	q := request{w: w}
	if !r.begin(&q, req, sendEndpoint) {
		return
	}
	defer q.done()
	// The payload is decoded into a pooled buffer: Send does not keep
	// it once it returns.
	bp := r.getBuf()
	sr, code, msg := r.parseSend(q.p, (*bp)[:0])
	if code != "" {
		r.putBuf(bp)
		q.fail(code, msg)
		return
	}
	err := q.s.Send(req.Context(), sr)
	*bp = sr.Data[:0]
	r.putBuf(bp)
	switch {
	case err == nil:
		jsonp.Write(w, q.cb, http.StatusCreated, okBody)
	case errors.Is(err, session.ErrClosed):
		q.fail(control.CodeSocket, "socket is closed")
	case errors.Is(err, session.ErrTooLarge):
		q.fail(control.CodeTooLarge, "message over "+strconv.FormatInt(r.reg.Config().MaxMessage, 10)+" bytes; the partial message was dropped")
	case errors.Is(err, session.ErrHeldFull):
		// Nothing was dropped: the client retries this n later.
		q.fail(control.CodeUnavailable, "early sends hold too many bytes; retry once the sends before this one have arrived")
	case errors.Is(err, session.ErrBusy):
		// Nothing was applied or dropped: the client retries this n.
		q.fail(control.CodeUnavailable, "the relay holds as much as it may; retry shortly")
	case errors.Is(err, session.ErrWindow):
		q.fail(control.CodeParams, "n is too far ahead of the last applied send")
	case errors.Is(err, session.ErrFragmentType):
		q.fail(control.CodeParams, err.Error())
	default:
		r.log.Error("send", zap.Error(err))
		q.fail(control.CodeInternal, "internal error")
	}
}

// parseSend checks t, d, n and f, decoding d into buf (appended from its
// start, so the caller can reuse the buffer). A non-empty code means the
// request is bad.
func (r *Relay) parseSend(p jsonp.Params, buf []byte) (session.SendRequest, control.Code, string) {
	var sr session.SendRequest
	t, ok := p["t"]
	if !ok {
		return sr, control.CodeParams, "t is required (t or b)"
	}
	if t != "t" && t != "b" {
		return sr, control.CodeParams, "t must be t (text) or b (binary)"
	}
	d, ok := p["d"]
	if !ok {
		return sr, control.CodeParams, "d is required (it may be empty)"
	}
	n, _, err := p.Int("n", 1, 1<<53)
	if err != nil {
		return sr, control.CodeParams, err.Error()
	}
	switch f, given := p["f"]; {
	case !given, f == "0":
	case f == "1":
		sr.More = true
	default:
		return sr, control.CodeParams, "f must be 1 (more fragments follow) or 0"
	}
	max := r.reg.Config().MaxMessage
	if t == "b" {
		sr.Binary = true
		if int64(base64.StdEncoding.DecodedLen(len(d))) > max+2 {
			return sr, control.CodeTooLarge, "message over " + strconv.FormatInt(max, 10) + " bytes"
		}
		b, err := base64.StdEncoding.AppendDecode(buf, []byte(d))
		if err != nil {
			return sr, control.CodeParams, "d is not valid standard base64"
		}
		sr.Data = b
	} else {
		if !utf8.ValidString(d) {
			return sr, control.CodeParams, "d is not valid UTF-8"
		}
		sr.Data = append(buf, d...)
		if sr.Data == nil {
			sr.Data = []byte{} // as []byte("") was
		}
	}
	if int64(len(sr.Data)) > max {
		return sr, control.CodeTooLarge, "message over " + strconv.FormatInt(max, 10) + " bytes"
	}
	sr.N = n
	return sr, "", ""
}

// handleClose is GET|POST /c/{socket}: the client closes the session.
func (r *Relay) handleClose(w http.ResponseWriter, req *http.Request) {
	q := request{w: w}
	if !r.begin(&q, req, closeEndpoint) {
		return
	}
	defer q.done()
	code, given, err := q.p.Int("code", 1000, 4999)
	if err != nil || (given && code != 1000 && code != 1001 && code < 3000) {
		q.fail(control.CodeParams, "code must be 1000, 1001 (page unload) or 3000–4999")
		return
	}
	if !given {
		code = 1000
	}
	reason := q.p["reason"]
	if len(reason) > 123 || !utf8.ValidString(reason) {
		q.fail(control.CodeParams, "reason must be valid UTF-8 of at most 123 bytes")
		return
	}
	if err := q.s.CloseByClient(int(code), reason); err != nil {
		q.fail(control.CodeSocket, "socket is closed")
		return
	}
	jsonp.Write(w, q.cb, http.StatusOK, okBody)
}

// handlePoll is GET /j/{socket}: the long poll for target messages.
func (r *Relay) handlePoll(w http.ResponseWriter, req *http.Request) {
	q := request{w: w}
	if !r.begin(&q, req, pollEndpoint) {
		return
	}
	defer q.done()
	ttlMS, given, err := q.p.Int("ttl", 0, 1<<40)
	if err != nil {
		q.fail(control.CodeParams, err.Error())
		return
	}
	ttl := r.cfg.DefaultTTL
	if given {
		ttl = min(time.Duration(ttlMS)*time.Millisecond, r.cfg.MaxTTL)
	}
	ack, hasAck, err := q.p.Int("a", 0, 1<<53)
	if err != nil {
		q.fail(control.CodeParams, err.Error())
		return
	}
	preq := session.PollRequest{Ack: ack, HasAck: hasAck, TTL: ttl, MaxBytes: r.cfg.MaxPollBytes}
	if ttl > 0 && r.park(req.Context(), &q, req, preq) {
		return
	}
	batch, err := q.s.Poll(req.Context(), preq)
	r.writePoll(&q, hasAck, batch, err)
}

// writePoll answers a poll on q.w and, without acks, counts the messages
// as delivered once they are flushed.
func (r *Relay) writePoll(q *request, hasAck bool, batch session.Batch, err error) {
	if !r.answerPoll(q, batch, err) || hasAck || len(batch.Messages) == 0 || err != nil {
		return
	}
	// Without acks a message counts as delivered once written.
	if err := http.NewResponseController(q.w).Flush(); err == nil {
		q.s.Delivered(batch.Messages[len(batch.Messages)-1].Seq)
	}
}

// answerPoll writes Poll's answer, or its error, on q.w. It returns
// false when nothing was written (the client went away).
func (r *Relay) answerPoll(q *request, batch session.Batch, err error) bool {
	switch {
	case err == nil:
	case errors.Is(err, session.ErrAck):
		q.fail(control.CodeParams, "a is beyond the last message sent")
		return true
	case errors.Is(err, session.ErrUnknown):
		q.fail(control.CodeSocket, "unknown or closed socket")
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false // the client went away; nothing was taken
	default:
		r.log.Error("poll", zap.Error(err))
		q.fail(control.CodeInternal, "internal error")
		return true
	}
	bp := r.getBuf()
	body := jsonp.AppendOpen((*bp)[:0], q.cb)
	body = appendBatch(body, batch)
	body = jsonp.AppendClose(body, q.cb)
	jsonp.WriteBody(q.w, q.cb, http.StatusOK, body)
	*bp = body
	r.putBuf(bp)
	return true
}

func (r *Relay) getBuf() *[]byte {
	if bp, ok := r.pool.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 4096)
	return &b
}

func (r *Relay) putBuf(bp *[]byte) {
	if cap(*bp) > 1<<20 {
		return // do not keep rare giant buffers
	}
	r.pool.Put(bp)
}

// appendBatch encodes a poll answer: {"ok":true,"messages":[…]}.
func appendBatch(b []byte, batch session.Batch) []byte {
	b = append(b, `{"ok":true,"messages":[`...)
	if batch.Heartbeat {
		b = append(b, `{"type":"heartbeat"}`...)
	}
	for i, m := range batch.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		switch m.Kind {
		case session.Text:
			b = append(b, `{"type":"text","data":`...)
			b = jsonp.AppendString(b, m.Data)
		case session.Binary:
			b = append(b, `{"type":"binary","data":"`...)
			b = base64.StdEncoding.AppendEncode(b, m.Data)
			b = append(b, '"')
		case session.Close:
			b = append(b, `{"type":"close","code":`...)
			b = strconv.AppendInt(b, int64(m.Code), 10)
			b = append(b, `,"reason":`...)
			b = jsonp.AppendString(b, []byte(m.Reason))
		}
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, m.Seq, 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
