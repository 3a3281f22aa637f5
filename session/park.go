package session

import "time"

// parkedPoll is a held poll without a goroutine: the caller took its
// connection out of net/http and will write the answer itself.
type parkedPoll struct {
	gen      uint64
	maxBytes int64
	answer   func(Batch, error)
}

// PollPark is Poll for a caller that does not wait. When the poll can be
// answered at once it returns the answer with parked false, as Poll
// would. Otherwise it parks the poll (no goroutine: a struct on the
// session and the session's poll timer) and returns parked true; answer
// is then called exactly once, from a new goroutine, with what Poll
// would have returned: messages, a heartbeat at the TTL, an empty batch
// when a newer poll takes over, ErrUnknown when the session is
// forgotten. There is no context: a parked poll does not see its client
// go away.
//
// Without an ack the caller must call Delivered with the last seq it
// wrote, once the answer is written.
func (s *Session) PollPark(req PollRequest, answer func(Batch, error)) (b Batch, parked bool, err error) {
	s.beginRequest()
	s.mu.Lock()
	b, parked, err = s.parkLocked(req, answer)
	s.mu.Unlock()
	if !parked {
		s.endRequest()
	}
	return b, parked, err
}

func (s *Session) parkLocked(req PollRequest, answer func(Batch, error)) (Batch, bool, error) {
	if s.removed {
		return Batch{}, false, ErrUnknown
	}
	if req.HasAck {
		if req.Ack >= s.nextSeq {
			return Batch{}, false, ErrAck
		}
		s.ackLocked(req.Ack)
		if s.ending && req.Ack >= s.closeSeq {
			s.mu.Unlock()
			s.removeNow()
			s.mu.Lock()
			return Batch{}, false, ErrUnknown
		}
	}
	s.supersedeLocked()
	if s.removed {
		return Batch{}, false, ErrUnknown
	}
	if len(s.queue) > 0 {
		return s.batchLocked(req.MaxBytes), false, nil
	}
	if req.TTL <= 0 {
		return Batch{Heartbeat: true}, false, nil
	}
	s.pollSeq++
	s.pollGen = s.pollSeq
	s.parked = &parkedPoll{gen: s.pollSeq, maxBytes: req.MaxBytes, answer: answer}
	s.cfg.Counters.pollHeld(1)
	s.pollDue = time.Now().Add(req.TTL)
	if s.pollTimer == nil {
		s.pollTimer = time.AfterFunc(req.TTL, s.onPollTimer)
	} else {
		s.pollTimer.Reset(req.TTL)
	}
	return Batch{}, true, nil
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
		s.answerParkedLocked(s.batchLocked(p.maxBytes), nil)
	case !time.Now().Before(s.pollDue):
		s.answerParkedLocked(Batch{Heartbeat: true}, nil)
	}
}

// answerParkedLocked detaches the parked poll and answers it from a new
// goroutine: the answer writes to the network, which must not happen
// under s.mu nor on the goroutine that queued a message.
func (s *Session) answerParkedLocked(b Batch, err error) {
	p := s.parked
	s.parked = nil
	if s.pollGen == p.gen {
		s.pollGen = 0
	}
	go func() {
		s.cfg.Counters.pollHeld(-1)
		s.endRequest()
		p.answer(b, err)
	}()
}
