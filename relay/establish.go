package relay

import (
	"context"
	"errors"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/netguard"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/zap"
)

// establish opens a session for a router's request, which refused
// (metrics.go) let through: it dials the target and answers where the
// session lives. Establish (metrics.go) wraps it.
func (r *Relay) establish(req control.EstablishRequest) control.EstablishReply {
	fail := func(code control.Code, msg string) control.EstablishReply {
		return control.EstablishReply{ID: req.ID, Code: code, Error: msg}
	}
	ctx := context.Background()
	var cancel context.CancelFunc = func() {}
	if req.DeadlineUnixMilli > 0 {
		ctx, cancel = context.WithDeadline(ctx, time.UnixMilli(req.DeadlineUnixMilli))
	}
	defer cancel()
	s, err := r.reg.Open(ctx, session.OpenRequest{
		Target:     req.Target,
		Protocols:  req.Protocols,
		Origin:     req.Origin,
		ClientAddr: req.ClientAddr,
		Token:      req.Token,
	})
	var de *session.DialError
	switch {
	case errors.As(err, &de):
		code, msg := dialAnswer(de)
		// The details (addresses, the resolver's, Go's error chain) are
		// the operator's: neither the client nor the bus sees them.
		r.log.Info("target dial failed", zap.String("establish", req.ID), zap.String("target", req.Target),
			zap.String("token", req.Token), zap.String("code", string(code)), zap.Error(de.Err))
		return fail(code, msg)
	case errors.Is(err, session.ErrRegistryClosed):
		return fail(control.CodeUnavailable, "relay is shutting down")
	case err != nil:
		r.log.Error("opening a session", zap.Error(err))
		return fail(control.CodeInternal, "internal error")
	}
	if ctx.Err() != nil {
		// The router gave up and released the count itself: close the
		// session rather than keep an orphan nobody will poll.
		r.orphans.Store(s.ID, struct{}{})
		s.Shutdown(1001, "establish timed out")
		return fail(control.CodeTimeout, msgDialTimeout)
	}
	r.log.Debug("session opened", zap.String("socket", s.ID[:8]), zap.String("target", req.Target))
	return control.EstablishReply{
		ID:       req.ID,
		OK:       true,
		FQDN:     s.Uniq + "." + r.cfg.FQDN,
		Socket:   s.ID,
		Protocol: s.Protocol,
	}
}

// dialAnswer is the error word and the fixed sentence a client is told
// for a failed dial.
func dialAnswer(de *session.DialError) (control.Code, string) {
	if netguard.IsBlocked(de) {
		return control.CodeTarget, msgDialBlocked
	}
	switch de.Kind {
	case session.DialTimeout:
		return control.CodeTimeout, msgDialTimeout
	case session.DialTLS:
		return control.CodeDial, msgDialTLS
	case session.DialHandshake:
		return control.CodeDial, msgDialHandshake
	case session.DialRedirect:
		return control.CodeDial, msgDialRedirect
	case session.DialSubprotocol:
		return control.CodeDial, msgDialSubprotocol
	}
	return control.CodeDial, msgDialConnect
}

// The sentences a failed dial is answered with: fixed, so that nothing of
// the relay's network (its resolver, addresses, routes) reaches a client.
const (
	msgDialBlocked     = "the relay may not connect to the target's address"
	msgDialTimeout     = "the target did not answer in time"
	msgDialConnect     = "could not connect to the target"
	msgDialTLS         = "the target's TLS handshake or certificate was not accepted"
	msgDialHandshake   = "the target did not accept the WebSocket handshake"
	msgDialRedirect    = "the target answered with a redirect, which is not followed"
	msgDialSubprotocol = "the target picked a subprotocol that was not offered"
)
