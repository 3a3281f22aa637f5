package session

import (
	"context"
	"errors"
	"sync"
	"time"
)

// parkedPoll is the poll holding the session's turn while it waits: a
// small struct and the session's poll timer, no goroutine. Every poll
// that waits is one (see park); answer is its way out.
type parkedPoll struct {
	maxBytes int64
	owner    any
	answer   func(Batch, error)
	// start is when the poll reached the session (park), since
	// monoEpoch, and outcome how it was answered: for its metric.
	start   time.Duration
	outcome PollOutcome
}

// errPark tells PollPark that its poll waited out the grace.
var errPark = errors.New("session: park the poll")

// PollPark is Poll for a caller that does not want to wait long. It
// waits as Poll does for up to grace; a poll answered by then returns
// its answer with parked false, as Poll would. A poll still waiting
// stays parked (a struct on the session and the session's poll timer,
// no goroutine) and PollPark returns parked true; answer is then called
// exactly once, without the session's lock, with what Poll would have
// returned: messages, a heartbeat at the TTL, an empty batch when a
// newer poll takes over, ErrUnknown when the session is forgotten,
// ErrAbandoned from AbandonParked. It is called on a goroutine the
// Registry owns and waits for in Close, or on the session's read loop
// (see the package doc), so it must not block for long. ctx counts only
// during the grace: a parked poll does not see its client go away.
//
// Without an ack the caller must call Delivered with the last seq it
// wrote, once the answer is written.
func (s *Session) PollPark(ctx context.Context, req PollRequest, grace time.Duration, answer func(Batch, error)) (b Batch, parked bool, err error) {
	if grace <= 0 {
		return s.park(req, answer)
	}
	w := newWaiter()
	if req.Owner == nil {
		req.Owner = w
	}
	b, parked, err = s.park(req, w.deliver)
	if !parked {
		return b, false, err
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	b, err = s.await(ctx, w, req.Owner, t.C)
	if err != errPark {
		return b, false, err
	}
	if a, answered := w.handOver(answer); answered {
		return a.b, false, a.err // answered as the grace ended
	}
	return Batch{}, true, nil
}

// waiter takes a parked poll's answer for a goroutine that waits for it
// (Poll, PollPark's grace), until it hands the poll over to a callback.
type waiter struct {
	ch   chan result // the answer, until handed over (buffered: one)
	mu   sync.Mutex
	then func(Batch, error) // set by handOver
}

type result struct {
	b   Batch
	err error
}

func newWaiter() *waiter { return &waiter{ch: make(chan result, 1)} }

// deliver is the parked poll's answer function.
func (w *waiter) deliver(b Batch, err error) {
	w.mu.Lock()
	then := w.then
	if then == nil {
		w.ch <- result{b, err}
	}
	w.mu.Unlock()
	if then != nil {
		then(b, err)
	}
}

// handOver sends the answer, from now on, to then, unless it came
// already: that one is returned (answered true).
func (w *waiter) handOver(then func(Batch, error)) (a result, answered bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case a = <-w.ch:
		return a, true
	default:
	}
	w.then = then
	return result{}, false
}

// Parked reports whether a poll is parked: waiting for messages.
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
	answer := s.detachParkedLocked(Batch{}, ErrAbandoned, PollGone)
	s.mu.Unlock()
	answer()
	return true
}

// checkParkedLocked answers the parked poll if it has an answer: the
// session is forgotten, messages are queued, or its TTL is over.
func (s *Session) checkParkedLocked() {
	p := s.parked
	switch {
	case s.removed:
		s.answerParkedLocked(Batch{}, ErrUnknown, PollClosed)
	case len(s.queue) > 0:
		if s.inAnswer {
			s.answerDue.Store(true) // see flushAnswer
			return
		}
		s.answerParkedLocked(s.batchLocked(p.maxBytes), nil, PollMessages)
	case !time.Now().Before(s.pollDue):
		s.answerParkedLocked(Batch{Heartbeat: true}, nil, PollHeartbeat)
	}
}

// answerParkedLocked detaches the parked poll and answers it on a
// goroutine the registry owns: the answer may write to the network,
// which must not happen under s.mu nor on a request's or a timer's
// goroutine. o is how the poll was answered, for its metric.
func (s *Session) answerParkedLocked(b Batch, err error, o PollOutcome) {
	s.reg.g.goFunc(s.detachParkedLocked(b, err, o))
}

// detachParkedLocked detaches the parked poll and returns its answer,
// to be run without s.mu. The poll's time is observed there, before
// the answer is written: what it measures is the wait, not the client.
func (s *Session) detachParkedLocked(b Batch, err error, o PollOutcome) func() {
	p := s.parked
	s.parked = nil
	p.outcome = o // in p rather than the closure: its size class holds
	return func() {
		now := time.Now()
		s.cfg.Counters.pollHeld(-1)
		s.endRequestAt(now)
		s.cfg.Counters.pollDone(p.outcome, now.Sub(monoEpoch)-p.start)
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
		answer = s.detachParkedLocked(s.batchLocked(p.maxBytes), nil, PollMessages)
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
