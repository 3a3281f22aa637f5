package session

import (
	"context"

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
	// Data is the fragment's payload (decoded).
	Data []byte
}

// Send applies a client send: sends are applied strictly in N order; an
// early one is held (within SendWindow and MaxHeld) and a repeat of an
// applied N is accepted without being sent again. A complete message goes
// to the target as one WebSocket message before Send returns.
//
// Errors: ErrClosed (the session ended), ErrWindow, ErrTooLarge (the
// partial message is dropped; the session goes on), ErrFragmentType.
func (s *Session) Send(ctx context.Context, req SendRequest) error {
	s.beginRequest()
	defer s.endRequest()

	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.Ended() {
		return ErrClosed
	}
	if req.N == 0 {
		return s.applyLocked(req.More, req.Binary, req.Data)
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
	err := s.applyLocked(req.More, req.Binary, req.Data)
	if err == ErrClosed {
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
		if herr := s.applyLocked(h.more, h.binary, h.data); herr != nil {
			s.log.Debug("held send failed", zap.Int64("n", s.applied), zap.Error(herr))
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
		return ErrTooLarge
	}
	if s.held == nil {
		s.held = make(map[int64]heldSend)
	}
	s.held[req.N] = heldSend{more: req.More, binary: req.Binary, data: req.Data}
	s.heldLen += int64(len(req.Data))
	return nil
}

// applyLocked adds a fragment to the message being assembled, or writes
// the complete message to the target. sendMu must be held.
func (s *Session) applyLocked(more, binary bool, data []byte) error {
	if s.fragOn && s.fragBin != binary {
		s.frag, s.fragOn = nil, false
		return ErrFragmentType
	}
	if int64(len(s.frag))+int64(len(data)) > s.cfg.MaxMessage {
		s.frag, s.fragOn = nil, false
		return ErrTooLarge
	}
	if more {
		if !s.fragOn {
			s.fragOn, s.fragBin = true, binary
		}
		s.frag = append(s.frag, data...)
		return nil
	}
	msg := data
	if s.fragOn {
		msg = append(s.frag, data...)
		s.frag, s.fragOn = nil, false
	}
	typ := websocket.MessageText
	if binary {
		typ = websocket.MessageBinary
	}
	// The write outlives the request's context on purpose: a message the
	// client was told is accepted must not be cut in half because the
	// client went away. WriteTimeout still bounds it.
	wctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	defer cancel()
	if err := s.conn.Write(wctx, typ, msg); err != nil {
		s.log.Debug("write to target failed", zap.Error(err))
		s.end(CauseWrite, int(websocket.StatusAbnormalClosure), "writing to the target failed", 0, "", false)
		return ErrClosed
	}
	s.cfg.Counters.toTarget(len(msg))
	return nil
}
