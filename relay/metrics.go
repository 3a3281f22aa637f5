package relay

import (
	"errors"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/session"
)

// Metrics is told about the relay's events; package metrics implements
// it. Its methods are called concurrently, once per establish or session,
// never per message.
type Metrics interface {
	// Established reports an establish request's outcome: result is "ok"
	// or the error word, atCapacity says the relay was full, took is the
	// time from request to reply (the target's dial and handshake).
	Established(result control.Code, atCapacity bool, took time.Duration)
	// SessionEnded reports a session's end, with why and the close code
	// its client gets.
	SessionEnded(cause session.Cause, code int)
}

// Why a relay takes no new session now, whatever the request.
var (
	errDraining   = errors.New("relay is draining")
	errAtCapacity = errors.New("relay is at capacity")
)

// refused says why the relay takes no new session now, or nil.
func (r *Relay) refused() error {
	switch {
	case r.draining.Load():
		return errDraining
	case r.reg.Len() >= r.cfg.Capacity:
		return errAtCapacity
	}
	return nil
}

// Establish opens a session for a router's request: it dials the target
// and answers where the session lives. It is the relay's handler for bus
// establish requests.
func (r *Relay) Establish(req control.EstablishRequest) control.EstablishReply {
	start := time.Now()
	var rep control.EstablishReply
	why := r.refused()
	if why != nil {
		rep = control.EstablishReply{ID: req.ID, Code: control.CodeUnavailable, Error: why.Error()}
	} else {
		rep = r.establish(req)
	}
	if r.cfg.Metrics != nil {
		result := control.Code("ok")
		if !rep.OK {
			result = rep.Code
		}
		r.cfg.Metrics.Established(result, why == errAtCapacity, time.Since(start))
	}
	return rep
}

// onEnd is the sessions' OnEnd: metrics, then the relay's bookkeeping.
func (r *Relay) onEnd(s *session.Session, code int) {
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.SessionEnded(s.Cause(), code)
	}
	r.onSessionEnd(s, code)
}
