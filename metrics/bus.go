package metrics

import (
	"context"
	"errors"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/router"
	"github.com/polysocket/polysocket/token"
)

// count counts err as a failed bus call of op, unless it is nil or the
// caller's own cancellation.
func (m *Metrics) count(op string, err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		m.BusError(op)
	}
	return err
}

// RouterBus wraps a router's bus so that its failed calls count in
// polysocket_bus_errors_total (op relays, establish, acquire, release).
func (m *Metrics) RouterBus(b router.Bus) router.Bus { return &routerBus{b, m} }

type routerBus struct {
	b router.Bus
	m *Metrics
}

var _ router.Bus = (*routerBus)(nil)

func (r *routerBus) Relays(ctx context.Context) ([]control.RelayInfo, error) {
	rs, err := r.b.Relays(ctx)
	return rs, r.m.count("relays", err)
}

func (r *routerBus) Establish(ctx context.Context, relayID string, req control.EstablishRequest) (control.EstablishReply, error) {
	rep, err := r.b.Establish(ctx, relayID, req)
	return rep, r.m.count("establish", err)
}

func (r *routerBus) Acquire(ctx context.Context, tokenName, relayID string, limit int) (bool, error) {
	ok, err := r.b.Acquire(ctx, tokenName, relayID, limit)
	return ok, r.m.count("acquire", err)
}

func (r *routerBus) Release(ctx context.Context, tokenName, relayID string) error {
	return r.m.count("release", r.b.Release(ctx, tokenName, relayID))
}

// TokenStore wraps a router's token store so that failed lookups (not
// unknown tokens) count as bus errors of op token.
func (m *Metrics) TokenStore(s router.TokenStore) router.TokenStore { return &tokenStore{s, m} }

type tokenStore struct {
	s router.TokenStore
	m *Metrics
}

func (t *tokenStore) Token(ctx context.Context, name string) (token.Token, error) {
	tok, err := t.s.Token(ctx, name)
	if errors.Is(err, token.ErrNotFound) {
		return tok, err
	}
	return tok, t.m.count("token", err)
}

// RelayBus wraps a relay's bus so that its failed calls count in
// polysocket_bus_errors_total (op register, unregister, serve, release).
func (m *Metrics) RelayBus(b relay.Bus) relay.Bus { return &relayBus{b, m} }

type relayBus struct {
	b relay.Bus
	m *Metrics
}

var _ relay.Bus = (*relayBus)(nil)

func (r *relayBus) Register(ctx context.Context, info control.RelayInfo) error {
	return r.m.count("register", r.b.Register(ctx, info))
}

func (r *relayBus) Unregister(ctx context.Context, relayID string) error {
	return r.m.count("unregister", r.b.Unregister(ctx, relayID))
}

func (r *relayBus) Serve(ctx context.Context, relayID string, handle control.EstablishFunc) error {
	return r.m.count("serve", r.b.Serve(ctx, relayID, handle))
}

func (r *relayBus) Release(ctx context.Context, tokenName, relayID string) error {
	return r.m.count("release", r.b.Release(ctx, tokenName, relayID))
}
