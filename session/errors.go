package session

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"slices"
)

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
	// ErrBusy: the relay's sessions together hold MaxBufferedTotal, so a
	// send that would be held (an early send, or a fragment) was not
	// kept. Nothing was applied or dropped: the client retries it later.
	ErrBusy = errors.New("the relay holds as much as it may; retry later")
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
// Err carries the details (addresses, the resolver's, Go's error chain):
// they are for the relay's log, never for the client, who is told Kind.
type DialError struct {
	Err  error
	Kind DialKind
}

func (e *DialError) Error() string { return "dialing target: " + e.Err.Error() }

func (e *DialError) Unwrap() error { return e.Err }

// DialKind is why a dial failed, as much as a client may be told.
type DialKind uint8

// The kinds of dial failure.
const (
	// DialConnect: no connection was made (the name did not resolve,
	// the port refused, no route) or it broke during the handshake.
	DialConnect DialKind = iota
	// DialTimeout: the dial ran out of time.
	DialTimeout
	// DialTLS: the TLS handshake failed, the certificate included.
	DialTLS
	// DialHandshake: the target answered, but not as a WebSocket server.
	DialHandshake
	// DialRedirect: the target answered with a redirect (not followed).
	DialRedirect
	// DialSubprotocol: the target picked a subprotocol not offered.
	DialSubprotocol
)

// dialKind classifies a failed dial from its error and the handshake
// answer, if there was one.
func dialKind(err error, resp *http.Response, offered []string) DialKind {
	var ue *url.Error
	var cve *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	var ae tls.AlertError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ue) && ue.Timeout():
		return DialTimeout
	case resp != nil && resp.StatusCode >= 300 && resp.StatusCode < 400:
		return DialRedirect
	case resp != nil && resp.StatusCode == http.StatusSwitchingProtocols:
		if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" && !slices.Contains(offered, p) {
			return DialSubprotocol
		}
		return DialHandshake
	case resp != nil:
		return DialHandshake
	case errors.As(err, &cve), errors.As(err, &rhe), errors.As(err, &ae):
		return DialTLS
	}
	return DialConnect
}
