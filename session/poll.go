package session

import (
	"context"
	"errors"
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
	// compared with ==, so a pointer of the caller's. Poll sets its own.
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
// A poll that has to wait is parked as PollPark parks it, at once; Poll
// then waits for the parked poll's answer (or ctx).
//
// Without an ack the caller must call Delivered with the last seq it
// wrote, once the answer is written.
func (s *Session) Poll(ctx context.Context, req PollRequest) (Batch, error) {
	w := newWaiter()
	req.Owner = w
	b, parked, err := s.park(req, w.deliver)
	if !parked {
		return b, err
	}
	return s.await(ctx, w, w, nil)
}

// await waits for the answer of the poll parked, by owner, with
// w.deliver; when ctx ends first it abandons the poll. With grace it
// waits no longer than that: it returns errPark, the poll still parked.
func (s *Session) await(ctx context.Context, w *waiter, owner any, grace <-chan time.Time) (Batch, error) {
	select {
	case a := <-w.ch:
		return a.b, a.err
	case <-ctx.Done():
		if !s.AbandonParked(owner) {
			<-w.ch // on its way: the poll was answered as ctx ended
		}
		return Batch{}, ctx.Err()
	case <-grace:
		return Batch{}, errPark
	}
}

// park is every poll's opening and its only way to wait: it applies the
// ack, takes the turn from the poll holding it (answered with nothing),
// and answers at once when it can. Otherwise it parks the poll (parked
// true): answer is called later, exactly once, with the poll's answer,
// and the poll counts as a request in progress until then.
func (s *Session) park(req PollRequest, answer func(Batch, error)) (b Batch, parked bool, err error) {
	start := time.Now() // the poll's start, for its metric and its TTL
	s.beginRequest()
	s.mu.Lock()
	b, parked, err = s.parkLocked(req, answer, start)
	s.mu.Unlock()
	if err == errRemove {
		// The ack of the close message: answered with nothing, quietly
		// (no 403 for the page), and the session is forgotten.
		s.removeNow()
		b, err = closeAcked(), nil
	}
	if !parked {
		now := time.Now()
		s.endRequestAt(now)
		s.cfg.Counters.pollDone(outcomeOf(b, err), now.Sub(start))
	}
	return b, parked, err
}

// errRemove tells park that the client acked the close message.
var errRemove = errors.New("session: close acked")

func (s *Session) parkLocked(req PollRequest, answer func(Batch, error), start time.Time) (Batch, bool, error) {
	if s.removed {
		return Batch{}, false, ErrUnknown
	}
	if req.HasAck {
		if req.Ack >= s.nextSeq {
			return Batch{}, false, ErrAck
		}
		s.ackLocked(req.Ack)
		if s.ending && req.Ack >= s.closeSeq {
			return Batch{}, false, errRemove
		}
	}
	// One poll at a time: a newer one takes the turn, and the older one
	// answers at once with nothing.
	if s.parked != nil {
		s.answerParkedLocked(Batch{Messages: []*Message{}}, nil, PollSuperseded)
	}
	switch {
	case len(s.queue) > 0:
		return s.batchLocked(req.MaxBytes), false, nil
	case req.TTL <= 0:
		return Batch{Heartbeat: true}, false, nil
	}
	s.parked = &parkedPoll{maxBytes: req.MaxBytes, owner: req.Owner, answer: answer, start: start.Sub(monoEpoch)}
	s.cfg.Counters.pollHeld(1)
	// One timer per session, reset by each parked poll, instead of a
	// timer per poll; it checks pollDue when it fires.
	s.pollDue = start.Add(req.TTL)
	if s.pollTimer == nil {
		s.pollTimer = time.AfterFunc(req.TTL, s.onPollTimer)
	} else {
		s.pollTimer.Reset(req.TTL)
	}
	return Batch{}, true, nil
}

// onPollTimer answers the parked poll with a heartbeat if its TTL is
// over.
func (s *Session) onPollTimer() {
	s.mu.Lock()
	if s.parked != nil {
		s.checkParkedLocked()
	}
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
