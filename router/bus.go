package router

import (
	"context"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/token"
)

// Bus is what the router needs from the control plane. membus implements it
// in process; redisbus over Redis. Methods may be called concurrently.
type Bus interface {
	// Relays lists the live relays as they last registered.
	Relays(ctx context.Context) ([]control.RelayInfo, error)
	// Establish asks relay relayID to open a session and waits for its
	// reply until ctx is done. It returns control.ErrRelayGone when no
	// such relay listens and control.ErrBusTimeout when no reply came in
	// time; the router then tries another relay. A reply with OK false is
	// the relay's (or the target's) answer and is not retried.
	Establish(ctx context.Context, relayID string, req control.EstablishRequest) (control.EstablishReply, error)
	// Acquire counts one connection of tokenName on relayID if the token's
	// count over all live relays is below limit (0: no limit). It reports
	// false, without counting, when the token is at its limit. It is
	// atomic across every router sharing the bus.
	Acquire(ctx context.Context, tokenName, relayID string, limit int) (bool, error)
	// Release undoes one Acquire of tokenName on relayID.
	Release(ctx context.Context, tokenName, relayID string) error
}

// TokenStore looks tokens up by name. It returns token.ErrNotFound for an
// unknown name.
type TokenStore interface {
	Token(ctx context.Context, name string) (token.Token, error)
}
