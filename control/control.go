// Package control defines the control-plane messages that routers, relays
// and the bus between them exchange: relay registrations, establish
// requests and replies, and the error words of the wire protocol.
//
// It holds data types only. The bus implementations (membus, redisbus)
// move these values; router and relay define the interfaces they need.
package control

import (
	"errors"
	"net/http"
)

// RelayInfo is what a relay publishes about itself, refreshed about every
// second under a short TTL.
type RelayInfo struct {
	// ID names the relay uniquely among live relays.
	ID string `json:"id"`
	// FQDN is the host (with port when not 80/443) that serves the relay's
	// sessions; sessions live at {uniq}.{FQDN}.
	FQDN string `json:"fqdn"`
	// Sessions is the number of live sessions.
	Sessions int `json:"sessions"`
	// Capacity is the most sessions the relay takes.
	Capacity int `json:"capacity"`
	// Draining relays take no new sessions.
	Draining bool `json:"draining"`
	// Tokens counts the relay's live sessions by token. A bus that lost
	// its connection counts (an outage longer than their expiry) restores
	// them from here; while it holds them, its own counts stand.
	Tokens map[string]int `json:"tokens,omitempty"`
}

// Free is the number of sessions the relay can still take, never negative.
func (r RelayInfo) Free() int {
	if r.Draining || r.Sessions >= r.Capacity {
		return 0
	}
	return r.Capacity - r.Sessions
}

// EstablishRequest asks a relay to dial a target and open a session.
type EstablishRequest struct {
	// ID identifies the request, so a reply can be matched to it.
	ID string `json:"id"`
	// RelayID is the relay the router picked; the relay uses it when it
	// releases the token's connection count at the end of the session.
	RelayID string `json:"relay"`
	// Token is the token the connection counts against.
	Token string `json:"token"`
	// Target is the ws:// or wss:// URL to dial, already validated.
	Target string `json:"target"`
	// Protocols are the subprotocols to request from the target.
	Protocols []string `json:"protocols,omitempty"`
	// Origin is the browser's origin, passed on to the target when the
	// relay is configured to; empty when the browser sent none.
	Origin string `json:"origin,omitempty"`
	// ClientAddr is the browser's address, passed on in X-Forwarded-For
	// when the relay is configured to.
	ClientAddr string `json:"addr,omitempty"`
	// DeadlineUnixMilli is when the router stops waiting for the reply;
	// a relay that finishes later closes the session it made instead of
	// keeping an orphan. Zero means no deadline.
	DeadlineUnixMilli int64 `json:"deadline,omitempty"`
}

// EstablishReply is a relay's answer to an EstablishRequest.
type EstablishReply struct {
	// ID repeats EstablishRequest.ID.
	ID string `json:"id"`
	// OK is true when the session exists.
	OK bool `json:"ok"`
	// FQDN is the session's host: {uniq}.{relay fqdn}.
	FQDN string `json:"fqdn,omitempty"`
	// Socket is the session's unguessable id.
	Socket string `json:"socket,omitempty"`
	// Protocol is the subprotocol the target picked, if any.
	Protocol string `json:"protocol,omitempty"`
	// Code is the error word when OK is false.
	Code Code `json:"code,omitempty"`
	// Error is a human-readable reason when OK is false.
	Error string `json:"error,omitempty"`
}

// EstablishFunc is how a relay answers establish requests. It must return
// within the request's deadline.
type EstablishFunc func(req EstablishRequest) EstablishReply

// Code is an error word of the wire protocol, sent as "code" in error
// replies.
type Code string

// The error words of the wire protocol.
const (
	CodeParams      Code = "params"
	CodeToken       Code = "token"
	CodeOrigin      Code = "origin"
	CodeTarget      Code = "target"
	CodeLimit       Code = "limit"
	CodeUnavailable Code = "unavailable"
	CodeDial        Code = "dial"
	CodeTimeout     Code = "timeout"
	CodeSocket      Code = "socket"
	CodeTooLarge    Code = "too_large"
	CodeMethod      Code = "method"
	CodeInternal    Code = "internal"
)

// HTTPStatus is the status a plain (non-JSONP) answer carries for the code.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeParams:
		return http.StatusBadRequest
	case CodeToken, CodeOrigin, CodeTarget, CodeSocket:
		return http.StatusForbidden
	case CodeLimit:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeDial:
		return http.StatusBadGateway
	case CodeTimeout:
		return http.StatusGatewayTimeout
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeMethod:
		return http.StatusMethodNotAllowed
	default:
		return http.StatusInternalServerError
	}
}

// Errors a bus returns; router and relay decide what they mean.
var (
	// ErrBusTimeout means the bus did not deliver an answer in time; the
	// router tries another relay.
	ErrBusTimeout = errors.New("bus: no answer in time")
	// ErrRelayGone means the addressed relay is not listening; the router
	// tries another relay.
	ErrRelayGone = errors.New("bus: relay not listening")
	// ErrBusDown means the bus itself is unreachable.
	ErrBusDown = errors.New("bus: unavailable")
)
