package session

import "errors"

// Errors of session operations; the relay maps each to a status and an
// error word.
var (
	// ErrUnknown: no live session has that id (or it ended and its close
	// grace is over).
	ErrUnknown = errors.New("unknown or closed socket")
	// ErrClosed: the session has ended; no more sends.
	ErrClosed = errors.New("socket is closed")
	// ErrAck: the ack is beyond the last message sent.
	ErrAck = errors.New("ack beyond the last message")
	// ErrWindow: a send number is too far ahead of the last applied one.
	ErrWindow = errors.New("send number too far ahead")
	// ErrTooLarge: a message is over the size limit (the partial message
	// is dropped; the session goes on).
	ErrTooLarge = errors.New("message too large")
	// ErrHeldFull: an early send would take the bytes held for their turn
	// over MaxHeld. It was not kept; the client retries it once the sends
	// before it have arrived. Unlike ErrTooLarge nothing is dropped.
	ErrHeldFull = errors.New("too many bytes of early sends held")
	// ErrFragmentType: a fragment's type differs from the first one's.
	ErrFragmentType = errors.New("fragment type differs from the message's first fragment")
	// ErrAbandoned: a parked poll's answer when AbandonParked took it
	// back (its client went away); there is nothing to write.
	ErrAbandoned = errors.New("parked poll abandoned")
	// ErrRegistryClosed: the registry is closed (the relay is shutting
	// down) and opens no more sessions.
	ErrRegistryClosed = errors.New("relay shutting down")
)

// DialError is a failure to open the target WebSocket: refused,
// unreachable, a failed handshake, a redirect or an unoffered subprotocol.
type DialError struct {
	Err     error
	Timeout bool // the dial ran out of time
}

func (e *DialError) Error() string { return "dialing target: " + e.Err.Error() }

func (e *DialError) Unwrap() error { return e.Err }
