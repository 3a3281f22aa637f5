package session

import (
	"context"
	"time"
)

// PollRequest is one long-poll of the client.
type PollRequest struct {
	// Ack is the highest seq the client has processed; HasAck says the
	// client sent one. With an ack, messages stay queued until acked and
	// a poll re-delivers everything after Ack.
	Ack    int64
	HasAck bool
	// TTL is how long the poll may wait when nothing is queued; 0
	// answers at once.
	TTL time.Duration
	// MaxBytes caps the batch (wire size of the data); a message bigger
	// than the cap comes alone.
	MaxBytes int64
	// Owner, for PollPark, names the parked poll for AbandonParked:
	// compared with ==, so a pointer of the caller's.
	Owner any
}

// Batch is a poll's answer.
type Batch struct {
	// Messages are the messages to send, oldest first. They must not be
	// changed.
	Messages []*Message
	// Heartbeat is true when the TTL ran out with nothing to send.
	Heartbeat bool
}

// Poll waits for messages for the client. It answers at once when some
// are queued, with a heartbeat when the TTL runs out, and with an empty
// batch when a newer poll takes over. It returns ErrAck for an ack beyond
// the last message, an empty batch to the ack of the close (which forgets
// the session), ErrUnknown for a session whose close was acked or whose
// grace is over, and ctx.Err() when the client went away.
//
// Without an ack the caller must call Delivered with the last seq it
// wrote, once the answer is written.
func (s *Session) Poll(ctx context.Context, req PollRequest) (Batch, error) {
	s.beginRequest()
	defer s.endRequest()

	s.mu.Lock()
	if s.removed {
		s.mu.Unlock()
		return Batch{}, ErrUnknown
	}
	if req.HasAck {
		if req.Ack >= s.nextSeq {
			s.mu.Unlock()
			return Batch{}, ErrAck
		}
		s.ackLocked(req.Ack)
		if s.ending && req.Ack >= s.closeSeq {
			s.mu.Unlock()
			s.removeNow()
			return closeAcked(), nil
		}
	}
	// One poll at a time: a newer one takes the turn, and the older one,
	// woken here, answers at once with nothing.
	s.supersedeLocked()
	s.pollSeq++
	mine := s.pollSeq
	s.pollGen = mine
	held := false // set once the poll waits: it counts as held
	b, err := s.waitLocked(ctx, mine, req, &held, nil)
	if s.pollGen == mine {
		s.pollGen = 0
	}
	s.mu.Unlock()
	if held {
		s.cfg.Counters.pollHeld(-1)
	}
	return b, err
}

// waitLocked is Poll's loop, with s.mu held on entry and on return.
// When park fires while the poll still waits, it returns errPark, the
// poll keeping its turn (see PollPark).
func (s *Session) waitLocked(ctx context.Context, mine uint64, req PollRequest, held *bool, park <-chan time.Time) (Batch, error) {
	for {
		if s.removed {
			return Batch{}, ErrUnknown
		}
		if len(s.queue) > 0 {
			return s.batchLocked(req.MaxBytes), nil
		}
		if req.TTL <= 0 {
			return Batch{Heartbeat: true}, nil
		}
		if !*held {
			*held = true
			s.cfg.Counters.pollHeld(1)
			// One timer per session, reset by each held poll, instead of
			// a timer per poll; it only wakes the waiters, and the poll
			// that owns the turn checks its own deadline.
			s.pollDue = time.Now().Add(req.TTL)
			if s.pollTimer == nil {
				s.pollTimer = time.AfterFunc(req.TTL, s.onPollTimer)
			} else {
				s.pollTimer.Reset(req.TTL)
			}
		} else if !time.Now().Before(s.pollDue) {
			return Batch{Heartbeat: true}, nil
		}
		ch := s.waitChLocked()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			return Batch{}, ctx.Err()
		case <-park:
			s.mu.Lock()
			if s.pollGen != mine {
				return Batch{Messages: []*Message{}}, nil
			}
			return Batch{}, errPark
		}
		s.mu.Lock()
		if s.pollGen != mine {
			return Batch{Messages: []*Message{}}, nil
		}
	}
}

// onPollTimer wakes the held poll to check its TTL.
func (s *Session) onPollTimer() {
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
}

// batchLocked takes queued messages up to maxBytes (at least one).
func (s *Session) batchLocked(maxBytes int64) Batch {
	var size int64
	n := 0
	for _, m := range s.queue {
		w := m.wireSize()
		if n > 0 && size+w > maxBytes {
			break
		}
		size += w
		n++
	}
	msgs := make([]*Message, n)
	copy(msgs, s.queue[:n])
	return Batch{Messages: msgs}
}

// Delivered drops the messages up to seq, written to a client that does
// not ack.
func (s *Session) Delivered(seq int64) {
	s.mu.Lock()
	s.ackLocked(seq)
	closed := s.ending && seq >= s.closeSeq
	s.mu.Unlock()
	if closed {
		// The close message reached a client that does not ack: the
		// session is done at once.
		s.removeNow()
	}
}

// ackLocked drops the queued messages up to seq and wakes the read loop
// if that freed buffer space.
func (s *Session) ackLocked(seq int64) {
	i := 0
	for i < len(s.queue) && s.queue[i].Seq <= seq {
		s.queued -= int64(len(s.queue[i].Data))
		s.queue[i] = nil
		i++
	}
	if i == 0 {
		return
	}
	if i == len(s.queue) && cap(s.queue) <= 8 {
		// All acked: a small backing array is kept for the next
		// messages (an allocation per message otherwise).
		s.queue = s.queue[:0]
	} else {
		s.queue = s.queue[i:]
		if len(s.queue) == 0 {
			s.queue = nil // let the old backing array go
		}
	}
	s.accountLocked()
	s.notifyLocked()
}

// closeAcked answers the poll that acks the close message: an empty batch,
// so that the client's last request succeeds quietly (a 403 there would
// be a failed script load in every page whose socket ended). The session
// is forgotten; a later request gets ErrUnknown.
func closeAcked() Batch { return Batch{Messages: []*Message{}} }
