package session

import "time"

// Counter is the part of a Prometheus counter or gauge a session needs:
// prometheus.Counter and prometheus.Gauge satisfy it. Add is called on
// the data path, so it must be cheap and must not allocate; resolve any
// labels once, when the Counters are built.
type Counter interface{ Add(float64) }

// Observer is the part of a Prometheus histogram a session needs:
// prometheus.Observer. Like Counter.Add, Observe is on the data path.
type Observer interface{ Observe(float64) }

// PollOutcome is how a poll was answered, for Counters.PollSeconds.
type PollOutcome uint8

// The poll outcomes.
const (
	// PollMessages: the poll took messages.
	PollMessages PollOutcome = iota
	// PollHeartbeat: nothing to send by the poll's TTL (at once for a
	// TTL of 0).
	PollHeartbeat
	// PollSuperseded: a newer poll of the client took the turn.
	PollSuperseded
	// PollClosed: the session is over: the poll acked the close
	// message, or found the session forgotten.
	PollClosed
	// PollGone: the client went away while the poll waited.
	PollGone
	// PollError: the poll was refused (an ack beyond the last message).
	PollError
	// NumPollOutcomes is the number of outcomes, the length of
	// Counters.PollSeconds.
	NumPollOutcomes
)

var pollOutcomeNames = [NumPollOutcomes]string{"messages", "heartbeat", "superseded", "closed", "gone", "error"}

// String is the outcome's name: messages, heartbeat, superseded, closed,
// gone or error.
func (o PollOutcome) String() string {
	if o < NumPollOutcomes {
		return pollOutcomeNames[o]
	}
	return "unknown"
}

// Counters count a registry's traffic. A nil field counts nothing, so
// the zero Counters costs a nil check per event.
type Counters struct {
	// MessagesToTarget and BytesToTarget count complete client messages
	// written to targets (after fragment assembly).
	MessagesToTarget, BytesToTarget Counter
	// MessagesFromTarget and BytesFromTarget count target messages
	// queued for clients.
	MessagesFromTarget, BytesFromTarget Counter
	// PollsHeld goes up by one while a poll waits for messages, and
	// back down when it answers (a gauge).
	PollsHeld Counter
	// PollSeconds, by outcome, observe each poll's time from its start
	// on the session to its answer being decided, once per poll, held or
	// not. A held poll is answered after its HTTP handler returned, so no
	// request timing sees it.
	PollSeconds [NumPollOutcomes]Observer
}

func (c *Counters) toTarget(n int) {
	if c.MessagesToTarget != nil {
		c.MessagesToTarget.Add(1)
	}
	if c.BytesToTarget != nil {
		c.BytesToTarget.Add(float64(n))
	}
}

func (c *Counters) fromTarget(n int) {
	if c.MessagesFromTarget != nil {
		c.MessagesFromTarget.Add(1)
	}
	if c.BytesFromTarget != nil {
		c.BytesFromTarget.Add(float64(n))
	}
}

func (c *Counters) pollHeld(d float64) {
	if c.PollsHeld != nil {
		c.PollsHeld.Add(d)
	}
}

func (c *Counters) pollDone(o PollOutcome, d time.Duration) {
	if ob := c.PollSeconds[o]; ob != nil {
		ob.Observe(d.Seconds())
	}
}

// outcomeOf names how a poll was answered with b and err; superseded
// polls are named by their caller.
func outcomeOf(b Batch, err error) PollOutcome {
	switch {
	case err == nil && len(b.Messages) > 0:
		return PollMessages
	case err == nil && b.Heartbeat:
		return PollHeartbeat
	case err == nil, err == ErrUnknown:
		return PollClosed // the ack of the close answers an empty batch
	case err == ErrAbandoned:
		return PollGone
	}
	return PollError
}

// Cause says why a session ended; see Session.Cause.
type Cause uint8

// The causes of a session's end.
const (
	// CauseNone: the session has not ended.
	CauseNone Cause = iota
	// CauseClient: the client closed it (/c).
	CauseClient
	// CauseTarget: the target closed it, vanished, or sent a message over
	// the size limit; the end code tells which.
	CauseTarget
	// CauseIdle: no client request for the idle timeout.
	CauseIdle
	// CausePing: the target did not answer a ping in time.
	CausePing
	// CauseWrite: writing a client message to the target failed.
	CauseWrite
	// CauseShutdown: the relay ended it (shutdown, drain, or an establish
	// whose router stopped waiting).
	CauseShutdown
)

var causeNames = [...]string{"none", "client", "target", "idle", "ping", "write", "shutdown"}

// String is the cause's name: none, client, target, idle, ping, write or
// shutdown.
func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "unknown"
}

// Cause says why the session ended; CauseNone while it is live.
func (s *Session) Cause() Cause {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}
