package session

import (
	"context"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// SendRequest is one client send.
type SendRequest struct {
	// N is the send's number (1, 2, 3…); 0 means unnumbered (the seed
	// protocol): applied at once, in arrival order.
	N int64
	// More is true when more fragments of the message follow.
	More bool
	// Binary says the data is binary (else text).
	Binary bool
	// Data is the fragment's payload (decoded). Send does not keep it
	// after it returns, so the caller may reuse the buffer.
	Data []byte
}

// Send applies a client send: sends are applied strictly in N order; an
// early one is held (within SendWindow and MaxHeld) and a repeat of an
// applied N is accepted without being sent again. A complete message goes
// to the target as one WebSocket message before Send returns. What is
// held (early sends, the fragments of a message) counts toward
// MaxBufferedTotal.
//
// Errors: ErrClosed (the session ended), ErrWindow, ErrTooLarge (the
// partial message is dropped; the session goes on), ErrHeldFull (an early
// send not kept, to be retried), ErrBusy (the relay-wide bound leaves no
// room to hold the send: nothing was applied, retry it), ErrFragmentType.
func (s *Session) Send(ctx context.Context, req SendRequest) error {
	s.beginRequest()
	defer s.endRequest()

	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.Ended() {
		return ErrClosed
	}
	if req.N == 0 {
		return s.applyLocked(req.More, req.Binary, req.Data, false)
	}
	if req.N <= s.applied {
		return nil // a retry of an applied send
	}
	if req.N > s.applied+s.cfg.SendWindow {
		return ErrWindow
	}
	if req.N > s.applied+1 {
		return s.holdLocked(req)
	}
	err := s.applyLocked(req.More, req.Binary, req.Data, false)
	if err == ErrClosed || err == ErrBusy {
		return err
	}
	s.applied = req.N
	// Apply the held sends that are now in turn. Their requests were
	// answered already; an error here can only be logged.
	for {
		h, ok := s.held[s.applied+1]
		if !ok {
			break
		}
		delete(s.held, s.applied+1)
		s.heldLen -= int64(len(h.data))
		s.applied++
		if herr := s.applyLocked(h.more, h.binary, h.data, true); herr != nil {
			s.reg.log.Debug("held send failed", s.logID(), zap.Int64("n", s.applied), zap.Error(herr))
			if herr == ErrClosed {
				break
			}
		}
	}
	return err
}

func (s *Session) holdLocked(req SendRequest) error {
	if _, dup := s.held[req.N]; dup {
		return nil
	}
	if s.heldLen+int64(len(req.Data)) > s.cfg.MaxHeld {
		return ErrHeldFull
	}
	// Copied: the caller may reuse req.Data once Send returns.
	data, ok := s.holdCopyLocked(req.Data)
	if !ok {
		return ErrBusy
	}
	if s.held == nil {
		s.held = make(map[int64]heldSend)
	}
	s.held[req.N] = heldSend{more: req.More, binary: req.Binary, data: data}
	s.heldLen += int64(len(req.Data))
	return nil
}

// applyLocked adds a fragment to the message being assembled, or writes
// the complete message to the target. owned says data is a held send's
// copy, counted until it is written, dropped or assembled (see
// addFragLocked). sendMu must be held.
func (s *Session) applyLocked(more, binary bool, data []byte, owned bool) error {
	var err error
	switch {
	case s.frag.on && s.frag.binary != binary:
		s.dropFragLocked()
		err = ErrFragmentType
	case s.frag.size+int64(len(data)) > s.cfg.MaxMessage:
		s.dropFragLocked()
		err = ErrTooLarge
	case more:
		return s.addFragLocked(binary, data, owned)
	default:
		err = s.writeLocked(binary, data)
		s.dropFragLocked()
	}
	if owned {
		s.giveLocked(pieceCost(data))
	}
	return err
}

// writeLocked writes the message that data completes to the target.
// sendMu must be held.
func (s *Session) writeLocked(binary bool, data []byte) error {
	typ := websocket.MessageText
	if binary {
		typ = websocket.MessageBinary
	}
	size := s.frag.size + int64(len(data))
	// The write outlives the request's context on purpose: a message the
	// client was told is accepted must not be cut in half because the
	// client went away. WriteTimeout still bounds it, through the
	// watchdog rather than a context: with a context the library
	// registers a callback per frame, and a timer per write would come
	// on top.
	s.watchWrite()
	err := s.writeMessageLocked(typ, data)
	s.writeStart.Store(0)
	if err != nil {
		s.reg.log.Debug("write to target failed", s.logID(), zap.Error(err))
		s.end(CauseWrite, int(websocket.StatusAbnormalClosure), "writing to the target failed", 0, "", false)
		return ErrClosed
	}
	s.cfg.Counters.toTarget(int(size))
	return nil
}

// monoEpoch anchors writeStart's monotonic clock.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) + 1 } // never 0

// watchWrite marks a write as begun and makes sure the watchdog is
// armed. sendMu must be held (it serializes the timer's creation).
func (s *Session) watchWrite() {
	s.writeStart.Store(monoNow())
	if !s.wdArmed.CompareAndSwap(false, true) {
		return // armed: it checks writeStart when it fires
	}
	if t := s.wdog.Load(); t != nil {
		t.Reset(s.cfg.WriteTimeout)
		return
	}
	// Stored before it can fire, so onWriteWatchdog always finds it.
	t := time.AfterFunc(time.Duration(1<<63-1), s.onWriteWatchdog)
	s.wdog.Store(t)
	t.Reset(s.cfg.WriteTimeout)
}

// onWriteWatchdog ends the session when the write in progress has taken
// WriteTimeout, which closes the connection and so fails the write (as
// the write context's deadline did). With no write in progress it
// disarms; the next write arms it again.
func (s *Session) onWriteWatchdog() {
	s.wdArmed.Store(false)
	start := s.writeStart.Load()
	if start == 0 {
		return
	}
	left := s.cfg.WriteTimeout - time.Duration(monoNow()-start)
	if left > 0 {
		if s.wdArmed.CompareAndSwap(false, true) {
			s.wdog.Load().Reset(left)
		}
		return
	}
	s.reg.log.Debug("write to target timed out", s.logID())
	s.end(CauseWrite, int(websocket.StatusAbnormalClosure), "writing to the target failed", 0, "", false)
}
