package session

import (
	"context"
	"errors"
	"time"
)

// parkedPoll is a held poll without a goroutine: the caller took its
// connection out of net/http and will write the answer itself.
type parkedPoll struct {
	gen      uint64
	maxBytes int64
	owner    any
	answer   func(Batch, error)
}

// errPark tells PollPark that its poll waited out the grace.
var errPark = errors.New("session: park the poll")

// PollPark is Poll for a caller that does not want to wait long. It
// waits as Poll does for up to grace; a poll answered by then returns
// its answer with parked false, as Poll would. A poll still waiting is
// parked (a struct on the session and the session's poll timer, no
// goroutine) and PollPark returns parked true; answer is then called
// exactly once, without the session's lock, from a goroutine of its own
// or from the session's read loop (so it must not block for long: the
// session reads nothing from its target meanwhile), with what Poll would have
// returned: messages, a heartbeat at the TTL, an empty batch when a
// newer poll takes over, ErrUnknown when the session is forgotten. ctx
// counts only during the grace: a parked poll does not see its client go
// away.
//
// Without an ack the caller must call Delivered with the last seq it
// wrote, once the answer is written.
func (s *Session) PollPark(ctx context.Context, req PollRequest, grace time.Duration, answer func(Batch, error)) (b Batch, parked bool, err error) {
	s.beginRequest()
	s.mu.Lock()
	if s.removed {
		s.mu.Unlock()
		s.endRequest()
		return Batch{}, false, ErrUnknown
	}
	if req.HasAck {
		if req.Ack >= s.nextSeq {
			s.mu.Unlock()
			s.endRequest()
			return Batch{}, false, ErrAck
		}
		s.ackLocked(req.Ack)
		if s.ending && req.Ack >= s.closeSeq {
			s.mu.Unlock()
			s.removeNow()
			s.endRequest()
			return closeAcked(), false, nil
		}
	}
	s.supersedeLocked()
	s.pollSeq++
	mine := s.pollSeq
	s.pollGen = mine
	held := false
	park := closedTime
	var t *time.Timer
	if grace > 0 {
		t = time.NewTimer(grace)
		park = t.C
	}
	b, err = s.waitLocked(ctx, mine, req, &held, park)
	if t != nil {
		t.Stop()
	}
	if err == errPark {
		s.parked = &parkedPoll{gen: mine, maxBytes: req.MaxBytes, owner: req.Owner, answer: answer}
		// Something may have come with the grace's end.
		s.checkParkedLocked()
		s.mu.Unlock()
		return Batch{}, true, nil // still held, still an active request
	}
	if s.pollGen == mine {
		s.pollGen = 0
	}
	s.mu.Unlock()
	if held {
		s.cfg.Counters.pollHeld(-1)
	}
	s.endRequest()
	return b, false, err
}

// closedTime parks a poll as soon as it has to wait.
var closedTime = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// Parked reports whether a poll is parked (see PollPark).
func (s *Session) Parked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parked != nil
}

// AbandonParked ends the parked poll that owner (PollRequest.Owner)
// parked, if it is still parked, because its client went away: its
// answer is called, on this goroutine, with ErrAbandoned, and the
// session counts the request as over, so the idle timeout runs from
// now rather than from the poll's TTL. Messages stay queued. It reports
// whether it ended the poll.
func (s *Session) AbandonParked(owner any) bool {
	s.mu.Lock()
	if s.parked == nil || owner == nil || s.parked.owner != owner {
		s.mu.Unlock()
		return false
	}
	answer := s.detachParkedLocked(Batch{}, ErrAbandoned)
	s.mu.Unlock()
	answer()
	return true
}

// supersedeLocked ends the turn of the poll holding it, if any: a
// parked one is answered with nothing at once, a waiting one is woken
// and sees it lost the turn.
func (s *Session) supersedeLocked() {
	if s.parked != nil {
		s.answerParkedLocked(Batch{Messages: []*Message{}}, nil)
	}
	if s.pollGen != 0 {
		s.notifyLocked()
	}
}

// checkParkedLocked answers the parked poll if it has an answer: the
// session is forgotten, messages are queued, or its TTL is over.
func (s *Session) checkParkedLocked() {
	p := s.parked
	switch {
	case s.removed:
		s.answerParkedLocked(Batch{}, ErrUnknown)
	case len(s.queue) > 0:
		if s.inAnswer {
			s.answerDue.Store(true) // see flushAnswer
			return
		}
		s.answerParkedLocked(s.batchLocked(p.maxBytes), nil)
	case !time.Now().Before(s.pollDue):
		s.answerParkedLocked(Batch{Heartbeat: true}, nil)
	}
}

// answerParkedLocked detaches the parked poll and answers it from a new
// goroutine: the answer writes to the network, which must not happen
// under s.mu nor on a request's or a timer's goroutine.
func (s *Session) answerParkedLocked(b Batch, err error) {
	go s.detachParkedLocked(b, err)()
}

// detachParkedLocked detaches the parked poll and returns its answer,
// to be run without s.mu.
func (s *Session) detachParkedLocked(b Batch, err error) func() {
	p := s.parked
	s.parked = nil
	if s.pollGen == p.gen {
		s.pollGen = 0
	}
	return func() {
		s.cfg.Counters.pollHeld(-1)
		s.endRequest()
		p.answer(b, err)
	}
}

// flushAnswer answers the parked poll that the read loop left due (see
// Session.answerDue), on the calling goroutine: the read loop, just
// before it reads the target's socket or waits for room.
func (s *Session) flushAnswer() {
	if !s.answerDue.Load() {
		return
	}
	s.mu.Lock()
	s.answerDue.Store(false)
	var answer func()
	if p := s.parked; p != nil && len(s.queue) > 0 {
		answer = s.detachParkedLocked(s.batchLocked(p.maxBytes), nil)
		// Writing the answer to a slow client can take long, and the
		// read loop reads nothing meanwhile: a pong waits behind it, as
		// when the queue is full, so a missed one does not count.
		s.paused = true
		s.pausedAt++
	}
	s.mu.Unlock()
	if answer != nil {
		answer()
		s.mu.Lock()
		s.paused = false
		s.mu.Unlock()
	}
}
