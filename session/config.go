package session

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// Config sets a Registry's limits and timeouts. A zero field takes the
// default written beside it.
type Config struct {
	// DialTimeout bounds the target's TCP, TLS and WebSocket handshake.
	// Default 10s.
	DialTimeout time.Duration
	// WriteTimeout bounds one write of a message to the target; a target
	// that does not take a message in time ends the session. Default 10s.
	WriteTimeout time.Duration
	// PingInterval is how often the target is pinged; PingTimeout how long
	// its pong may take before the session ends with 1006. Defaults 20s
	// and 10s. A negative PingInterval turns pings off.
	PingInterval, PingTimeout time.Duration
	// IdleTimeout ends a session when no request has been in progress for
	// this long. Default 30s.
	IdleTimeout time.Duration
	// CloseGrace is how long an ended session keeps answering polls with
	// its close message when the client does not ack it. Default 5s.
	CloseGrace time.Duration
	// MaxMessage is the largest message either way, in bytes, after
	// fragments are assembled. Default 1 MiB.
	MaxMessage int64
	// MaxBuffered is the most bytes of target messages a session buffers
	// for its client, each message counted with 72 bytes of bookkeeping
	// (so a flood of tiny messages is bounded by memory, not payload);
	// at the bound it stops reading from the target. Default 1 MiB.
	MaxBuffered int64
	// MaxBufferedTotal bounds what all sessions together buffer, both
	// ways, counted as MaxBuffered is: target messages queued for
	// clients, and client sends held for their turn or assembled from
	// fragments. At the bound, every session that holds a message stops
	// reading from its target until its client takes what it holds; a
	// session holding nothing still reads one message, so every session
	// moves and the total passes the bound by at most one message a
	// session. A client send that would be held is refused (ErrBusy)
	// unless it fits; only the one session let finish a message it has
	// begun may pass the bound, by at most twice MaxMessage, so sessions
	// holding parts of messages never wait on each other for ever.
	// 0: no bound.
	MaxBufferedTotal int64
	// SendWindow is how far ahead of the last applied send number a send
	// may arrive and be held. Default 64.
	SendWindow int64
	// MaxHeld is the most bytes of early sends held for their turn.
	// Default MaxMessage.
	MaxHeld int64
	// ForwardOrigin passes the client's origin to the target as Origin;
	// ForwardFor passes the client's address as X-Forwarded-For.
	ForwardOrigin, ForwardFor bool
	// DialContext opens the TCP connections to targets; nil means a
	// net.Dialer with keepalive. Put address checks (netguard) here.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSClientConfig is used for wss:// targets; nil means the system
	// roots.
	TLSClientConfig *tls.Config
	// Counters, if set, count the sessions' traffic (see metrics.go).
	Counters Counters
	// OnEnd, if set, is called once for every session that ends, after
	// its target connection is closed, from a goroutine the Registry
	// owns. The relay releases the token's count here.
	OnEnd func(s *Session, code int)
}

// DefaultConfig is the configuration whose fields the zero Config's
// defaults fill, for a CLI's flag defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 10*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.PingInterval, 20*time.Second)
	def(&c.PingTimeout, 10*time.Second)
	def(&c.IdleTimeout, 30*time.Second)
	def(&c.CloseGrace, 5*time.Second)
	if c.MaxMessage == 0 {
		c.MaxMessage = 1 << 20
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = 1 << 20
	}
	if c.SendWindow == 0 {
		c.SendWindow = 64
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = c.MaxMessage
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.DialTimeout < 0, c.WriteTimeout < 0, c.PingTimeout < 0, c.IdleTimeout < 0, c.CloseGrace < 0:
		return fmt.Errorf("session: timeouts must not be negative")
	case c.MaxMessage < 0, c.MaxBuffered < 0, c.MaxBufferedTotal < 0, c.SendWindow < 0, c.MaxHeld < 0:
		return fmt.Errorf("session: limits must not be negative")
	}
	return nil
}
