package router

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/jsonp"
	"github.com/polysocket/polysocket/token"
	"go.uber.org/zap"
)

// Config configures a Router. A zero field takes the default beside it.
type Config struct {
	// EstablishTimeout bounds one relay's answer to an establish request,
	// target dial included. Default 15s.
	EstablishTimeout time.Duration
	// BusTimeout bounds each other bus call (token lookup, relay list,
	// counts), so a bus outage answers fast. Default 1s.
	BusTimeout time.Duration
	// MaxAttempts is how many relays one create may try when relays do
	// not answer. Default 3.
	MaxAttempts int
	// ClientAddr returns the client's address for a request; nil means
	// the host of RemoteAddr. (Trusted-proxy handling plugs in here.)
	ClientAddr func(*http.Request) string
	// OnCreate, if set, is called after each create with its outcome
	// ("ok" or an error word), the why parameter and how long it took.
	OnCreate func(code control.Code, why string, took time.Duration)
}

// DefaultConfig is the configuration whose fields the zero Config's
// defaults fill, for a CLI's flag defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.EstablishTimeout == 0 {
		c.EstablishTimeout = 15 * time.Second
	}
	if c.BusTimeout == 0 {
		c.BusTimeout = time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.ClientAddr == nil {
		c.ClientAddr = func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return host
		}
	}
	return c
}

// Router answers /create. Create it with New.
type Router struct {
	cfg    Config
	bus    Bus
	tokens TokenStore
	log    *zap.Logger
}

// New returns a router using bus for relays and counts and tokens for
// token lookups.
func New(cfg Config, bus Bus, tokens TokenStore, log *zap.Logger) (*Router, error) {
	if bus == nil || tokens == nil {
		return nil, errors.New("router: bus and token store are required")
	}
	cfg = cfg.withDefaults()
	if cfg.EstablishTimeout < 0 || cfg.BusTimeout < 0 || cfg.MaxAttempts < 0 {
		return nil, errors.New("router: timeouts and attempts must not be negative")
	}
	return &Router{cfg: cfg, bus: bus, tokens: tokens, log: log}, nil
}

// ServeHTTP answers GET /create; mount it at that path.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method == http.MethodOptions {
		jsonp.SetHeaders(w.Header())
		w.Header().Set("Access-Control-Allow-Methods", "GET")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	p, perr := jsonp.Parse(r, 0)
	cb, ok := p.Callback()
	if !ok {
		jsonp.WriteBadCallback(w)
		return
	}
	var cr createReply
	var why string
	var err error
	if r.Method == http.MethodGet {
		cr, why, err = rt.create(r, p, perr)
	} else {
		w.Header().Set("Allow", "GET")
		err = refuse(control.CodeMethod, r.Method+" is not allowed; use GET")
	}
	code := control.Code("ok")
	if err != nil {
		var ce *createError
		if !errors.As(err, &ce) {
			rt.log.Error("create", zap.Error(err))
			ce = &createError{control.CodeInternal, "internal error"}
		}
		code = ce.code
		// JSONP errors answer 200 so the callback runs.
		jsonp.WriteError(w, cb, http.StatusOK, ce.code, ce.msg)
	} else {
		jsonp.WriteValue(w, cb, http.StatusOK, cr)
	}
	if rt.cfg.OnCreate != nil {
		rt.cfg.OnCreate(code, why, time.Since(start))
	}
}

// createReply is the success answer of /create.
type createReply struct {
	OK       bool   `json:"ok"`
	FQDN     string `json:"fqdn"`
	Socket   string `json:"socket"`
	Protocol string `json:"protocol"`
}

// createError is a create refused with an error word.
type createError struct {
	code control.Code
	msg  string
}

func (e *createError) Error() string { return string(e.code) + ": " + e.msg }

func refuse(code control.Code, msg string) error { return &createError{code, msg} }

// create runs the checks of a GET, after the callback's, in the
// protocol's order and establishes the session. p and perr are
// jsonp.Parse's; why is the client's reason for falling back.
func (rt *Router) create(r *http.Request, p jsonp.Params, perr error) (cr createReply, why string, err error) {
	if perr != nil {
		return cr, "", refuse(control.CodeParams, perr.Error())
	}
	q, err := parseCreate(p)
	if err != nil {
		return cr, q.why, err
	}
	ctx := r.Context()
	tok, err := rt.lookupToken(ctx, q.token)
	if err != nil {
		return cr, q.why, err
	}
	origin := token.OriginOf(r)
	if !tok.AllowsOrigin(origin) {
		if origin == "" {
			return cr, q.why, refuse(control.CodeOrigin, "the request has no Origin or Referer, and the token does not allow that")
		}
		return cr, q.why, refuse(control.CodeOrigin, "origin "+origin+" is not allowed for this token")
	}
	if !tok.AllowsTarget(q.target) {
		return cr, q.why, refuse(control.CodeTarget, "target "+q.target.String()+" is not allowed for this token")
	}
	req := control.EstablishRequest{
		Token:      tok.Token.Name,
		Target:     q.target.String(),
		Protocols:  q.protocols,
		Origin:     origin,
		ClientAddr: rt.cfg.ClientAddr(r),
	}
	rep, err := rt.establish(ctx, req, tok.Token.Limit)
	if err != nil {
		return cr, q.why, err
	}
	return createReply{OK: true, FQDN: rep.FQDN, Socket: rep.Socket, Protocol: rep.Protocol}, q.why, nil
}

func (rt *Router) lookupToken(ctx context.Context, name string) (*token.Compiled, error) {
	bctx, cancel := context.WithTimeout(ctx, rt.cfg.BusTimeout)
	defer cancel()
	t, err := rt.tokens.Token(bctx, name)
	switch {
	case errors.Is(err, token.ErrNotFound):
		return nil, refuse(control.CodeToken, "unknown token")
	case err != nil:
		rt.log.Warn("token lookup failed", zap.Error(err))
		return nil, refuse(control.CodeUnavailable, "the control plane is unavailable; try again shortly")
	}
	c, err := token.Compile(t)
	if err != nil {
		rt.log.Error("stored token does not compile", zap.String("token", name), zap.Error(err))
		return nil, refuse(control.CodeInternal, "token is misconfigured")
	}
	return c, nil
}

// establish picks relays, counts the connection and asks the relay to
// open the session, trying another relay when one does not answer.
func (rt *Router) establish(ctx context.Context, req control.EstablishRequest, limit int) (control.EstablishReply, error) {
	tried := make(map[string]bool)
	for attempt := 0; attempt < rt.cfg.MaxAttempts; attempt++ {
		relay, err := rt.pick(ctx, tried)
		if err != nil {
			return control.EstablishReply{}, err
		}
		if relay.ID == "" {
			if attempt == 0 {
				// No relay: still say "limit" first when the token is
				// at its limit, as the checks' order says.
				if err := rt.checkLimit(ctx, req.Token, limit); err != nil {
					return control.EstablishReply{}, err
				}
			}
			return control.EstablishReply{}, refuse(control.CodeUnavailable, "no relay is available")
		}
		tried[relay.ID] = true
		if err := rt.acquire(ctx, req.Token, relay.ID, limit); err != nil {
			return control.EstablishReply{}, err
		}
		rep, err := rt.ask(ctx, relay, req)
		if err == nil && rep.OK {
			return rep, nil
		}
		rt.release(req.Token, relay.ID)
		switch {
		case err == nil && rep.Code == control.CodeUnavailable:
			continue // full or draining since it registered
		case err == nil:
			return rep, refuse(rep.Code, rep.Error)
		case errors.Is(err, control.ErrRelayGone), errors.Is(err, control.ErrBusTimeout):
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rt.log.Warn("relay did not answer; trying another", zap.String("relay", relay.ID), zap.Error(err))
			continue
		default:
			rt.log.Warn("establish failed", zap.String("relay", relay.ID), zap.Error(err))
			return rep, refuse(control.CodeUnavailable, "the control plane is unavailable; try again shortly")
		}
	}
	return control.EstablishReply{}, refuse(control.CodeUnavailable, "no relay answered")
}

func (rt *Router) ask(ctx context.Context, relay control.RelayInfo, req control.EstablishRequest) (control.EstablishReply, error) {
	ectx, cancel := context.WithTimeout(ctx, rt.cfg.EstablishTimeout)
	defer cancel()
	req.ID = newRequestID()
	req.RelayID = relay.ID
	if dl, ok := ectx.Deadline(); ok {
		req.DeadlineUnixMilli = dl.UnixMilli()
	}
	return rt.bus.Establish(ectx, relay.ID, req)
}

// pick returns the live, non-draining relay with the most free capacity
// not yet tried (ties broken at random), or a zero RelayInfo when there is
// none.
func (rt *Router) pick(ctx context.Context, tried map[string]bool) (control.RelayInfo, error) {
	bctx, cancel := context.WithTimeout(ctx, rt.cfg.BusTimeout)
	defer cancel()
	relays, err := rt.bus.Relays(bctx)
	if err != nil {
		rt.log.Warn("listing relays failed", zap.Error(err))
		return control.RelayInfo{}, refuse(control.CodeUnavailable, "the control plane is unavailable; try again shortly")
	}
	var best control.RelayInfo
	ties := 0
	for _, r := range relays {
		free := r.Free()
		if free <= 0 || tried[r.ID] {
			continue
		}
		switch {
		case best.ID == "" || free > best.Free():
			best, ties = r, 1
		case free == best.Free():
			// Reservoir sampling keeps each tied relay equally likely.
			ties++
			if rand.IntN(ties) == 0 {
				best = r
			}
		}
	}
	return best, nil
}

func (rt *Router) acquire(ctx context.Context, tokenName, relayID string, limit int) error {
	bctx, cancel := context.WithTimeout(ctx, rt.cfg.BusTimeout)
	defer cancel()
	ok, err := rt.bus.Acquire(bctx, tokenName, relayID, limit)
	switch {
	case err != nil:
		rt.log.Warn("counting a connection failed", zap.Error(err))
		return refuse(control.CodeUnavailable, "the control plane is unavailable; try again shortly")
	case !ok:
		return refuse(control.CodeLimit, "the token is at its connection limit")
	}
	return nil
}

// checkLimit reports a limit error when the token is at its limit, by
// counting a connection and giving it back at once.
func (rt *Router) checkLimit(ctx context.Context, tokenName string, limit int) error {
	if limit == 0 {
		return nil
	}
	if err := rt.acquire(ctx, tokenName, "", limit); err != nil {
		var ce *createError
		if errors.As(err, &ce) && ce.code == control.CodeLimit {
			return err
		}
		return nil
	}
	rt.release(tokenName, "")
	return nil
}

// release gives a count back. It runs on its own short deadline: the
// client may be gone, but the count must not leak.
func (rt *Router) release(tokenName, relayID string) {
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.BusTimeout)
	defer cancel()
	if err := rt.bus.Release(ctx, tokenName, relayID); err != nil {
		rt.log.Warn("releasing a connection count failed", zap.String("token", tokenName), zap.Error(err))
	}
}

func newRequestID() string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isToken reports whether s is an RFC 7230 token (a valid subprotocol).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
