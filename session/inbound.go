package session

import (
	"context"

	"github.com/coder/websocket"
)

// What clients send is held in two places until it reaches the target:
// early sends waiting for their turn (Session.held) and the message being
// assembled from fragments (Session.frag). Both count in reg.buffered,
// the same relay-wide total as the queues for clients, each piece as its
// memory: capacity plus msgOverhead. A piece is counted when it is made
// and uncounted when it is written to the target or dropped, or when the
// session ends; sendMu guards all of it.

// fragChunk is the smallest chunk a message is assembled in: small
// fragments fill one chunk before another is made, so a message costs
// about its size whatever its fragments are.
const fragChunk = 4096

// assembly is a message being assembled from fragments, in chunks rather
// than one growing buffer: a held fragment's copy becomes a chunk as it
// is, with no new memory, and growth costs no copy of what came before.
type assembly struct {
	on     bool // a message is begun
	binary bool
	chunks [][]byte
	size   int64 // payload bytes
}

// pieceCost is what one piece of client data is counted as.
func pieceCost(b []byte) int64 { return int64(cap(b)) + msgOverhead }

// takeLocked counts n more bytes of client data if the relay-wide bound
// leaves room for them, and reports whether it did. sendMu must be held.
func (s *Session) takeLocked(n int64) bool {
	if !s.reg.reserve(n, s.cfg.MaxBufferedTotal) {
		return false
	}
	s.clientMem += n
	return true
}

// finishLocked is takeLocked for the one session the registry lets finish
// a message it has begun past MaxBufferedTotal, by at most twice
// MaxMessage: were every session refused, sessions that each hold part
// of a message could wait on one another for ever. sendMu must be held.
func (s *Session) finishLocked(n int64) bool {
	r := s.reg
	if !s.frag.on || s.cfg.MaxBufferedTotal <= 0 {
		return false
	}
	if r.finisher.Load() != s && !r.finisher.CompareAndSwap(nil, s) {
		return false
	}
	if !r.reserve(n, s.cfg.MaxBufferedTotal+2*s.cfg.MaxMessage) {
		return false
	}
	s.clientMem += n
	return true
}

// giveLocked uncounts n bytes of client data. sendMu must be held.
func (s *Session) giveLocked(n int64) {
	s.clientMem -= n
	s.reg.buffered.Add(-n)
}

// holdCopyLocked counts and copies an early send's data, or reports that
// the relay-wide bound leaves no room. The copy's capacity is its length,
// so pieceCost is exact. sendMu must be held.
func (s *Session) holdCopyLocked(data []byte) ([]byte, bool) {
	if !s.takeLocked(int64(len(data)) + msgOverhead) {
		return nil, false
	}
	c := make([]byte, len(data))
	copy(c, data)
	return c, true
}

// addFragLocked adds a fragment to the message being assembled. owned
// says data is a held send's copy, counted already: it is kept as it is
// or, when it fits the last chunk, copied there and uncounted, so
// applying held sends never needs room. A fragment from a request needs
// room for a new chunk when the last one is full: ErrBusy when there is
// none. sendMu must be held.
func (s *Session) addFragLocked(binary bool, data []byte, owned bool) error {
	a := &s.frag
	n := len(a.chunks)
	var last []byte
	if n > 0 {
		last = a.chunks[n-1]
	}
	spare := cap(last) - len(last)
	switch {
	case len(data) == 0:
		if owned {
			s.giveLocked(pieceCost(data))
		}
	case len(data) <= spare:
		a.chunks[n-1] = append(last, data...)
		if owned {
			s.giveLocked(pieceCost(data))
		}
	case owned:
		a.chunks = append(a.chunks, data)
	default:
		rest := data[spare:]
		c := make([]byte, 0, max(len(rest), fragChunk))
		if cost := pieceCost(c); !s.takeLocked(cost) && !s.finishLocked(cost) {
			return ErrBusy
		}
		if spare > 0 {
			a.chunks[n-1] = append(last, data[:spare]...)
		}
		a.chunks = append(a.chunks, append(c, rest...))
	}
	a.on, a.binary = true, binary
	a.size += int64(len(data))
	return nil
}

// dropFragLocked forgets the message being assembled (written or
// dropped) and uncounts its chunks. sendMu must be held.
func (s *Session) dropFragLocked() {
	if !s.frag.on {
		// Nothing begun: no chunks, and not the finisher. The common
		// case, a whole message, touches nothing shared.
		return
	}
	var n int64
	for _, c := range s.frag.chunks {
		n += pieceCost(c)
	}
	if n != 0 {
		s.giveLocked(n)
	}
	s.frag = assembly{}
	s.reg.finisher.CompareAndSwap(s, nil)
}

// freeClientData drops what the ended session holds of its client's
// sends, so the bound does not keep counting it. Sends after the end
// add nothing (Send checks Ended under sendMu first).
func (s *Session) freeClientData() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.dropFragLocked()
	for n, h := range s.held {
		s.giveLocked(pieceCost(h.data))
		delete(s.held, n)
	}
	s.heldLen = 0
}

// writeMessageLocked writes the message that data completes to the
// target: the assembled chunks, if any, then data. sendMu must be held.
func (s *Session) writeMessageLocked(typ websocket.MessageType, data []byte) error {
	chunks := s.frag.chunks
	switch {
	case len(chunks) == 0:
		return s.conn.Write(context.Background(), typ, data)
	case len(chunks) == 1 && cap(chunks[0])-len(chunks[0]) >= len(data):
		// A small message: one frame, in the chunk's spare room.
		return s.conn.Write(context.Background(), typ, append(chunks[0], data...))
	}
	// One WebSocket message in several frames, each from where it lies.
	w, err := s.conn.Writer(context.Background(), typ)
	if err != nil {
		return err
	}
	for _, c := range chunks {
		if _, err := w.Write(c); err != nil {
			_ = w.Close()
			return err
		}
	}
	if len(data) > 0 {
		if _, err := w.Write(data); err != nil {
			_ = w.Close()
			return err
		}
	}
	return w.Close()
}

// reserve adds n to the relay-wide total if that stays within limit (0:
// no limit), and reports whether it did.
func (r *Registry) reserve(n, limit int64) bool {
	if limit <= 0 {
		r.buffered.Add(n)
		return true
	}
	for {
		cur := r.buffered.Load()
		if cur+n > limit {
			return false
		}
		if r.buffered.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}
