package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/polysocket/polysocket/jsonp"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/zap"
)

// Held polls outside net/http.
//
// A poll that has to wait would hold, in net/http, a handler goroutine,
// the connection's background-read goroutine, a bufio writer, a chunk
// buffer, the request and its contexts: most of an idle session's
// memory. With Config.ParkPolls the relay instead hijacks the
// connection, parks the poll on its session (session.PollPark: a small
// struct, no goroutine) and returns. The answer is written on the raw
// connection by the goroutine the session answers on (one its registry
// owns and Shutdown waits for), which then hands the connection on
// (handOn): to the fast path's loop, or to Handback, a listener served
// by a second http.Server, for the client's next request.
//
// What is lost: a parked poll does not see its client go away at once
// (nothing reads the connection). Every SweepInterval the relay peeks at
// each parked poll's socket (sweepParked) and abandons the polls whose
// client closed it, so their sessions' idle timeout starts then rather
// than at the poll's TTL. Just before an answer is written the relay
// peeks again, so a client that closed it is seen then and its messages
// are not counted as delivered.

// parkWriteTimeout bounds writing a parked poll's answer.
const parkWriteTimeout = 10 * time.Second

// handback is an in-process net.Listener fed with connections whose
// parked poll was answered.
type handback struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	addr      net.Addr
}

func newHandback() *handback {
	return &handback{
		ch:   make(chan net.Conn),
		done: make(chan struct{}),
		addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)},
	}
}

// Accept returns the next handed-back connection.
func (l *handback) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections handed back later are closed.
func (l *handback) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr is a placeholder: the connections come from the main listener.
func (l *handback) Addr() net.Addr { return l.addr }

// give hands c to the listener's server, or closes it once the listener
// is closed.
func (l *handback) give(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// Handback is the listener of connections whose parked poll was
// answered (see Config.ParkPolls). Serve it with an http.Server like
// the main one, and shut that server down with the main one.
func (r *Relay) Handback() net.Listener { return r.handback }

// prefixConn is a connection with bytes already read from it.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// parkable reports whether a poll's connection may be hijacked: HTTP/1.1
// keep-alive only (an HTTP/2 stream cannot be, and a connection that
// closes after the answer gains nothing).
func (r *Relay) parkable(req *http.Request) bool {
	return r.cfg.ParkPolls && req.ProtoMajor == 1 && req.ProtoMinor == 1 && !req.Close
}

// parked is one hijacked poll waiting for its answer.
type parked struct {
	r      *Relay
	s      *session.Session
	cb     string
	hasAck bool
	conn   net.Conn // nil until hijacked
}

// park parks the poll on its session. It returns false, having taken
// nothing, when the poll can be answered at once or the connection
// cannot be hijacked; the caller then polls as usual.
func (r *Relay) park(ctx context.Context, q *request, preq session.PollRequest) bool {
	p := &parked{r: r, s: q.s, cb: q.cb, hasAck: preq.HasAck}
	rc := http.NewResponseController(q.w)
	grace := r.cfg.ParkAfter
	if isFast(q.w) {
		// Parking costs the fast path no hijack and no hand-back: a
		// poll that has to wait parks at once.
		grace = 0
	}
	// The poll is parked first, under the session's lock; the connection
	// is hijacked after. The answer may come in between, so it waits for
	// the hijack on ready. It runs on a goroutine the session registry
	// owns (or the session's read loop), so Registry.Close waits for it.
	ready := make(chan struct{})
	preq.Owner = p
	b, ok, err := q.s.PollPark(ctx, preq, grace, func(b session.Batch, err error) {
		<-ready
		if p.conn == nil {
			return // the hijack failed: answered by the handler
		}
		r.parked.Delete(p)
		if errors.Is(err, session.ErrAbandoned) {
			_ = p.conn.Close() // the client is gone
			return
		}
		if next := p.answer(b, err); next != nil {
			r.handOn(next)
		}
	})
	if !ok {
		r.writePoll(q, preq.HasAck, b, err)
		return true
	}
	conn, brw, herr := rc.Hijack()
	if herr != nil {
		// Cannot happen for HTTP/1.1 through our middleware; answer the
		// poll empty rather than hold it here.
		r.log.Warn("hijacking a poll", zap.Error(herr))
		close(ready)
		jsonp.Write(q.w, q.cb, http.StatusOK, []byte(`{"ok":true,"messages":[]}`))
		return true
	}
	// Clear net/http's deadlines: the poll may wait up to MaxTTL.
	_ = conn.SetDeadline(time.Time{})
	if n := brw.Reader.Buffered(); n > 0 {
		pre, _ := brw.Reader.Peek(n)
		conn = &prefixConn{Conn: conn, prefix: bytes.Clone(pre)}
	}
	p.conn = conn
	r.parked.Store(p, struct{}{})
	close(ready)
	return true
}

// handOn serves the next requests of a connection whose parked poll was
// answered: the fast path's loop on a goroutine of its own (the caller
// may be the session's read loop), or net/http's through Handback, or
// nobody once Shutdown has begun (the connection is closed).
func (r *Relay) handOn(c net.Conn) {
	if f := r.fast.Load(); f != nil {
		f.goContinue(c)
		return
	}
	r.handback.give(c)
}

// sweepLoop runs sweepParked every SweepInterval until ctx is done.
func (r *Relay) sweepLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.sweepParked()
		}
	}
}

// sweepParked abandons the parked polls whose client closed or reset the
// connection: one non-blocking peek a parked poll. It returns how many.
func (r *Relay) sweepParked() int {
	n := 0
	r.parked.Range(func(k, _ any) bool {
		p := k.(*parked)
		if peerGone(p.conn) && p.s.AbandonParked(p) {
			n++
		}
		return true
	})
	return n
}

// answer writes the parked poll's answer on its connection and returns
// the connection for its next request, or nil when it was closed.
func (p *parked) answer(b session.Batch, err error) net.Conn {
	conn := p.conn
	// Nothing reads a parked connection, so this is where a client
	// that went away is seen (a pipelined request stays unread). With
	// an ack it need not be: the messages stay queued until acked
	// whatever the write does.
	if !p.hasAck && len(b.Messages) > 0 && peerGone(conn) {
		_ = conn.Close()
		return nil // messages without ack stay queued
	}
	w := &rawResponse{h: make(http.Header, 8)}
	q := request{w: w, cb: p.cb, s: p.s}
	if !p.r.answerPoll(&q, b, err) {
		_ = conn.Close()
		return nil
	}
	_ = conn.SetWriteDeadline(time.Now().Add(parkWriteTimeout))
	if _, werr := conn.Write(w.bytes()); werr != nil {
		_ = conn.Close()
		return nil
	}
	_ = conn.SetWriteDeadline(time.Time{})
	if !p.hasAck && len(b.Messages) > 0 && err == nil {
		// Without acks a message counts as delivered once written.
		p.s.Delivered(b.Messages[len(b.Messages)-1].Seq)
	}
	return conn
}

// rawResponse collects an answer that is written on a hijacked
// connection.
type rawResponse struct {
	h      http.Header
	status int
	body   []byte
}

func (w *rawResponse) Header() http.Header { return w.h }

func (w *rawResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *rawResponse) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

// bytes is the whole HTTP/1.1 response.
func (w *rawResponse) bytes() []byte {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	var buf bytes.Buffer
	buf.Grow(256 + len(w.body))
	buf.WriteString("HTTP/1.1 ")
	buf.WriteString(strconv.Itoa(status))
	buf.WriteByte(' ')
	buf.WriteString(http.StatusText(status))
	buf.WriteString("\r\n")
	w.h.Del("Content-Length")
	_ = w.h.Write(&buf)
	buf.WriteString("Content-Length: ")
	buf.WriteString(strconv.Itoa(len(w.body)))
	buf.WriteString("\r\nDate: ")
	buf.Write(appendDate(buf.AvailableBuffer()))
	buf.WriteString("\r\n\r\n")
	buf.Write(w.body)
	return buf.Bytes()
}
