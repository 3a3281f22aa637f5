package relay

import (
	"context"
	"errors"
	"time"

	"github.com/polysocket/polysocket/control"
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
	case errors.As(err, &de) && de.Timeout:
		return fail(control.CodeTimeout, "the target did not answer in time")
	case errors.As(err, &de):
		return fail(control.CodeDial, "could not connect to the target: "+de.Err.Error())
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
		return fail(control.CodeTimeout, "the target did not answer in time")
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
