package session

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// Session is one client's connection to its target. Its methods may be
// called concurrently; the relay calls Poll, Send and CloseByClient.
type Session struct {
	// ID is the socket id: unguessable, the client's credential.
	ID string
	// Uniq is the session's subdomain label, unique among live sessions.
	Uniq string
	// Protocol is the subprotocol the target picked.
	Protocol string
	// Token is OpenRequest's.
	Token string

	reg    *Registry
	cfg    *Config
	conn   *websocket.Conn
	ctx    context.Context // cancelled once the target connection is closed
	cancel context.CancelFunc

	// sendMu serializes applying client sends, in n order; it is held
	// while a message is written to the target. Taken before mu.
	sendMu  sync.Mutex
	applied int64              // highest n applied
	held    map[int64]heldSend // early sends waiting for their turn
	heldLen int64              // payload bytes in held
	frag    assembly           // the message being assembled from fragments
	// clientMem is what held and frag add to reg.buffered (inbound.go).
	clientMem int64

	// The write watchdog enforces WriteTimeout without a context (and
	// its timer and callback) per write: writeStart is when the write in
	// progress began (monotonic ns, 0: none), wdog a timer made at the
	// first write and armed while wdArmed.
	writeStart atomic.Int64
	wdArmed    atomic.Bool
	wdog       atomic.Pointer[time.Timer]

	mu     sync.Mutex
	queue  []*Message // messages for the client, oldest first, unacked
	queued int64      // bytes of Data in queue
	// counted is what this session has added to reg.buffered: its
	// queue's memory when accountLocked last ran.
	counted int64
	nextSeq int64
	changed chan struct{} // closed on any change; nil when nobody waits
	// parked is the poll holding the turn while it waits (see park);
	// nil: none. pollTimer answers it at its TTL: made at the first
	// parked poll, reset by each one, it checks pollDue.
	parked    *parkedPoll
	pollTimer *time.Timer
	pollDue   time.Time
	// While the read loop queues a message (inAnswer), a parked poll
	// with messages to take is not answered at once: answerDue is set,
	// and the read loop answers it itself, with every message queued by
	// then, just before it next reads from the target's socket
	// (flushAnswer). So messages that arrived together leave together,
	// a lone message leaves at once, and no goroutine is started.
	// readHooked says the read loop's socket reads call flushAnswer.
	inAnswer   bool
	answerDue  atomic.Bool
	readHooked bool
	paused     bool  // the read loop waits for buffer space
	pausedAt   int64 // count of pauses, to tell a ping that one happened
	// reads counts the messages read from the target: one read while a
	// ping waits shows the target alive, its pong behind data in flight.
	reads    atomic.Int64
	ending   bool // the close message is queued
	closeSeq int64
	cause    Cause // why the session ended; see metrics.go
	removed  bool
	active   int       // requests in progress
	lastEnd  time.Time // when the last request ended
	idle     *time.Timer
	// idleArmed says idle is pending. A request's end only notes lastEnd
	// while it is: the timer checks lastEnd when it fires and re-arms.
	idleArmed bool
	ping      *time.Timer
}

type heldSend struct {
	more   bool
	binary bool
	data   []byte
}

func newSession(r *Registry, conn *websocket.Conn, req OpenRequest) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		ID:       randomID(),
		Protocol: conn.Subprotocol(),
		Token:    req.Token,
		reg:      r,
		cfg:      &r.cfg,
		conn:     conn,
		ctx:      ctx,
		cancel:   cancel,
		nextSeq:  1,
		lastEnd:  time.Now(),
	}
	return s
}

// start runs the read loop and the timers.
func (s *Session) start() {
	s.mu.Lock()
	s.idle = time.AfterFunc(s.cfg.IdleTimeout, s.onIdleTimer)
	s.idleArmed = true
	if s.cfg.PingInterval > 0 {
		s.ping = time.AfterFunc(s.cfg.PingInterval, s.onPingTimer)
	}
	s.mu.Unlock()
	s.reg.g.goFunc(s.readLoop)
}

// readYieldEvery is how many target messages the read loop takes before
// it lets other goroutines run.
const readYieldEvery = 16

// fullLocked reports whether the queue holds MaxBuffered: its payload
// plus msgOverhead a message, the memory it takes (counting payload
// alone let a flood of 64-byte messages hold twice MaxBuffered). The
// close message, queued only when the session ends, counts too; the read
// loop stops then anyway.
func (s *Session) fullLocked() bool {
	return s.queued+int64(len(s.queue))*msgOverhead >= s.cfg.MaxBuffered
}

// accountLocked brings reg.buffered up to date with the queue's memory.
// Every change of the queue calls it.
func (s *Session) accountLocked() {
	mem := s.queued + int64(len(s.queue))*msgOverhead
	if d := mem - s.counted; d != 0 {
		s.reg.buffered.Add(d)
		s.counted = mem
	}
}

// pauseLocked reports whether the read loop must wait: the session's
// queue is full, or the relay's sessions together buffer
// MaxBufferedTotal and this one holds something. A session with an
// empty queue always reads, so every session moves. (A share per
// session, letting those below it read on, would let the total grow
// with each session that arrives while the early ones hold more than
// the share: to about MaxBufferedTotal × ln(sessions).)
func (s *Session) pauseLocked() bool {
	if s.fullLocked() {
		return true
	}
	limit := s.cfg.MaxBufferedTotal
	return limit > 0 && s.counted > 0 && s.reg.buffered.Load() >= limit
}

// readLoop moves target messages into the queue. When the queue holds
// MaxBuffered bytes it stops reading, so the target meets TCP
// backpressure instead of the relay dropping or hoarding messages.
func (s *Session) readLoop() {
	burst := 0
	for {
		s.mu.Lock()
		if s.pauseLocked() && s.answerDue.Load() {
			s.mu.Unlock()
			s.flushAnswer() // before the wait: the answer is what frees room
			s.mu.Lock()
		}
		for s.pauseLocked() && !s.ending {
			if !s.paused {
				s.paused = true
				s.pausedAt++
			}
			ch := s.waitChLocked()
			s.mu.Unlock()
			select {
			case <-ch:
			case <-s.ctx.Done():
			}
			s.mu.Lock()
		}
		s.paused = false
		ending := s.ending
		s.mu.Unlock()
		if ending {
			return
		}
		typ, data, err := s.read()
		if err != nil {
			code, reason := readErrorCode(err)
			s.end(CauseTarget, code, reason, 0, "", false)
			return
		}
		kind := Text
		if typ == websocket.MessageBinary {
			kind = Binary
		}
		s.mu.Lock()
		if !s.ending {
			s.queue = append(s.queue, &Message{Seq: s.nextSeq, Kind: kind, Data: data})
			s.nextSeq++
			s.queued += int64(len(data))
			s.accountLocked()
			s.inAnswer = s.readHooked
			s.notifyLocked()
			s.inAnswer = false
		}
		s.mu.Unlock()
		s.reads.Add(1)
		s.cfg.Counters.fromTarget(len(data))
		if burst++; burst%readYieldEvery == 0 {
			// A target that pushes without pause never blocks this loop,
			// and a goroutine that does not block runs for its whole
			// time slice (10 ms): with a thousand such loops a request's
			// goroutine waited seconds for its turn. Short turns keep
			// the queue of runnable goroutines moving.
			runtime.Gosched()
		}
	}
}

// readBufs are scratch buffers for reading target messages: a message is
// read into one and copied out at its exact size, so a session keeps no
// buffer while it waits and a message costs one allocation.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// read reads the target's next message. It passes no context with a Done
// channel, which would cost the library a callback registration per
// frame: the read ends when end closes the connection.
func (s *Session) read() (websocket.MessageType, []byte, error) {
	typ, r, err := s.conn.Reader(context.Background())
	if err != nil {
		return 0, nil, err
	}
	bp := readBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			s.putReadBuf(bp, b)
			return 0, nil, err
		}
	}
	data := make([]byte, len(b))
	copy(data, b)
	s.putReadBuf(bp, b)
	return typ, data, nil
}

func (s *Session) putReadBuf(bp *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return // do not keep rare big buffers
	}
	*bp = b[:0]
	readBufs.Put(bp)
}

// readErrorCode is the close code the client sees for a read error.
func readErrorCode(err error) (int, string) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return int(ce.Code), ce.Reason
	case errors.Is(err, websocket.ErrMessageTooBig):
		return int(websocket.StatusMessageTooBig), "message from target over the size limit"
	}
	return int(websocket.StatusAbnormalClosure), ""
}

// end ends the session once, for cause: it queues the close message
// (code, reason) for the client and closes the target connection: with a
// close frame (targetCode, targetReason) when graceful, at once
// otherwise. It reports whether this call ended the session.
func (s *Session) end(cause Cause, code int, reason string, targetCode websocket.StatusCode, targetReason string, graceful bool) bool {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return false
	}
	s.ending = true
	s.cause = cause
	s.closeSeq = s.nextSeq
	s.nextSeq++
	s.queue = append(s.queue, &Message{Seq: s.closeSeq, Kind: Close, Code: code, Reason: reason})
	s.accountLocked()
	s.notifyLocked()
	if s.active == 0 {
		s.lastEnd = time.Now()
		s.idle.Reset(s.timeoutLocked())
		s.idleArmed = true
	}
	if s.ping != nil {
		s.ping.Stop()
	}
	s.mu.Unlock()
	s.reg.live.Add(-1)
	s.reg.watch.notify()
	s.reg.g.goFunc(func() {
		if graceful {
			// Close waits for the target's answer, bounded by the
			// library's own 5 s handshake timeouts.
			_ = s.conn.Close(targetCode, targetReason)
		} else {
			_ = s.conn.CloseNow()
		}
		s.cancel()
		s.freeClientData()
		s.reg.log.Debug("session ended", s.logID(), zap.Int("code", code))
		if s.cfg.OnEnd != nil {
			s.cfg.OnEnd(s, code)
		}
	})
	return true
}

// Ended reports whether the session has ended (its close message is
// queued).
func (s *Session) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ending
}

// Done is closed once the target connection is closed.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// CloseByClient ends the session at the client's request: the target gets
// code and reason, and so does the client's poll. It returns ErrClosed if
// the session had already ended.
func (s *Session) CloseByClient(code int, reason string) error {
	s.beginRequest()
	defer s.endRequest()
	if !s.end(CauseClient, code, reason, websocket.StatusCode(code), reason, true) {
		return ErrClosed
	}
	return nil
}

// Shutdown ends the session with code for both sides.
func (s *Session) Shutdown(code int, reason string) {
	s.end(CauseShutdown, code, reason, websocket.StatusCode(code), reason, true)
}

// beginRequest and endRequest bracket every client request, so the idle
// timeout counts from the end of the last one.
func (s *Session) beginRequest() {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
}

func (s *Session) endRequest() { s.endRequestAt(time.Time{}) }

// endRequestAt is endRequest at now, for a caller that has read the
// clock (a poll, for its metric): one read serves both. A zero now reads
// the clock only if the idle timeout needs it.
func (s *Session) endRequestAt(now time.Time) {
	s.mu.Lock()
	s.active--
	if s.active == 0 && !s.removed {
		if now.IsZero() {
			now = time.Now()
		}
		s.lastEnd = now
		// A pending timer fires no later than lastEnd+IdleTimeout and
		// re-arms for the rest, so it need not move on every request
		// (a timer change per request). An ended session's timeout can
		// shrink to CloseGrace: that one is set exactly.
		if !s.idleArmed || s.ending {
			s.idle.Reset(s.timeoutLocked())
			s.idleArmed = true
		}
	}
	s.mu.Unlock()
}

// timeoutLocked is how long the session may go without requests: the
// idle timeout while live or while an ended session still holds data
// for its client (a slow client must not lose the messages queued ahead
// of the close), the close grace once only the close message is left.
func (s *Session) timeoutLocked() time.Duration {
	if s.ending && len(s.queue) <= 1 {
		return s.cfg.CloseGrace
	}
	return s.cfg.IdleTimeout
}

func (s *Session) onIdleTimer() {
	s.mu.Lock()
	s.idleArmed = false
	if s.active > 0 || s.removed {
		s.mu.Unlock()
		return // endRequest arms it again
	}
	if wait := s.timeoutLocked() - time.Since(s.lastEnd); wait > 0 {
		s.idle.Reset(wait)
		s.idleArmed = true
		s.mu.Unlock()
		return
	}
	ending := s.ending
	s.mu.Unlock()
	if !ending {
		s.end(CauseIdle, int(websocket.StatusGoingAway), "idle timeout", websocket.StatusGoingAway, "client idle", true)
		return
	}
	s.removeNow()
}

// removeNow forgets the session: later requests get ErrUnknown.
func (s *Session) removeNow() {
	s.mu.Lock()
	if s.removed {
		s.mu.Unlock()
		return
	}
	s.removed = true
	s.queue = nil
	s.queued = 0
	s.accountLocked()
	s.notifyLocked()
	s.mu.Unlock()
	s.stopTimers()
	s.reg.remove(s)
}

func (s *Session) stopTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idle.Stop()
	s.idleArmed = false
	if s.ping != nil {
		s.ping.Stop()
	}
	if s.pollTimer != nil {
		s.pollTimer.Stop()
	}
	if t := s.wdog.Load(); t != nil {
		t.Stop()
	}
}

func (s *Session) onPingTimer() {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return
	}
	pauses := s.pausedAt
	paused := s.paused
	s.reg.g.add() // Close waits for the ping in flight
	s.mu.Unlock()
	defer s.reg.g.done()
	if !paused {
		reads := s.reads.Load()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.PingTimeout)
		err := s.conn.Ping(ctx)
		cancel()
		s.mu.Lock()
		// A pong cannot be read while the read loop is paused by
		// backpressure; such a miss does not count against the target.
		// Only the timeout is a miss: a ping that failed because the
		// connection closed leaves the read loop to report how it closed
		// (the target's own close frame, say).
		// A message read meanwhile shows the target alive: on a slow
		// link its pong comes behind the data already in flight.
		missed := errors.Is(err, context.DeadlineExceeded) && s.pausedAt == pauses && !s.paused &&
			s.reads.Load() == reads
		s.mu.Unlock()
		if missed && s.ctx.Err() == nil {
			s.reg.log.Debug("target missed a pong", s.logID(), zap.Error(err))
			s.end(CausePing, int(websocket.StatusAbnormalClosure), "target did not answer a ping", 0, "", false)
			return
		}
	}
	s.mu.Lock()
	if !s.ending {
		s.ping.Reset(s.cfg.PingInterval)
	}
	s.mu.Unlock()
}

// waitChLocked returns a channel closed at the next change.
func (s *Session) waitChLocked() chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// notifyLocked wakes everyone waiting for a change.
func (s *Session) notifyLocked() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	if s.parked != nil {
		s.checkParkedLocked()
	}
}

// Buffered is the number of bytes of target messages queued for the
// client (acked ones excluded).
func (s *Session) Buffered() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// Paused reports whether the session has stopped reading its target
// because its buffer is full.
func (s *Session) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

// Polling reports whether a poll is being held (is parked).
func (s *Session) Polling() bool { return s.Parked() }

// Config is the session's configuration.
func (s *Session) Config() Config { return *s.cfg }

// logID names the session in log lines: a prefix of the socket id, too
// short to be used as the credential. (A per-session logger would cost
// about a kilobyte per idle session.)
func (s *Session) logID() zap.Field { return zap.String("socket", s.ID[:8]) }
