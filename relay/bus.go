package relay

import (
	"context"

	"github.com/polysocket/polysocket/control"
)

// Bus is what the relay needs from the control plane. membus implements it
// in process; redisbus over Redis. Methods may be called concurrently.
type Bus interface {
	// Register publishes info under a short TTL. The relay calls it about
	// every second; a relay that stops calling it disappears, and so do
	// the connection counts it held.
	Register(ctx context.Context, info control.RelayInfo) error
	// Unregister removes the relay at once (at shutdown).
	Unregister(ctx context.Context, relayID string) error
	// Serve delivers the establish requests addressed to relayID to handle,
	// each in its own goroutine, and sends back its reply. It blocks until
	// ctx is done, recovering by itself from bus outages, and returns only
	// after every handle call it started has returned.
	Serve(ctx context.Context, relayID string, handle control.EstablishFunc) error
	// Release returns one connection count of tokenName held by relayID,
	// when a session ends.
	Release(ctx context.Context, tokenName, relayID string) error
}
