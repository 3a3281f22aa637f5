package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/zap"
)

// Config configures a Relay. A zero field takes the default beside it.
type Config struct {
	// ID names the relay on the bus. Default: random.
	ID string
	// FQDN is the relay's public host, with the port when not 80/443,
	// e.g. "relay1.example.com" or "localhost:8080". Required.
	FQDN string
	// Capacity is the most live sessions. Default 10,000.
	Capacity int
	// DefaultTTL and MaxTTL bound how long a poll is held. Defaults 25s
	// and 60s.
	DefaultTTL, MaxTTL time.Duration
	// MaxPollBytes caps one poll response's messages. Default 256 KiB.
	MaxPollBytes int64
	// MaxBody caps a POST body. Default 3×MaxMessage + 64 KiB (enough
	// for a maximal text message percent-encoded).
	MaxBody int64
	// RegisterInterval is how often the relay refreshes its registration.
	// Default 1s.
	RegisterInterval time.Duration
	// SweepInterval is how often the relay looks for parked polls whose
	// client went away (see park.go). Default 5s.
	SweepInterval time.Duration
	// Session configures the sessions. Its OnEnd is the relay's own.
	Session session.Config
	// ParkPolls takes held polls out of their handler (see park.go)
	// when their connection is an httpconn.Server's.
	ParkPolls bool
	// ParkAfter is how long a held poll served by net/http waits in its
	// handler before it is parked, so that polls answered soon (a
	// chat's, an echo's) skip the hijack, which costs more than it saves
	// then; the fast loop's polls park at once. Default 20ms; negative:
	// at once.
	ParkAfter time.Duration
	// Metrics, if set, is told about establishes and ended sessions
	// (see metrics.go). Traffic is counted by Session.Counters.
	Metrics Metrics
}

// DefaultConfig is the configuration whose fields the zero Config's
// defaults fill (ID stays empty: New draws a random one), for a CLI's
// flag defaults.
func DefaultConfig() Config {
	c := Config{}.withDefaults()
	c.Session = session.DefaultConfig()
	return c
}

func (c Config) withDefaults() Config {
	if c.Capacity == 0 {
		c.Capacity = 10000
	}
	if c.DefaultTTL == 0 {
		c.DefaultTTL = 25 * time.Second
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = 60 * time.Second
	}
	if c.MaxPollBytes == 0 {
		c.MaxPollBytes = 256 << 10
	}
	if c.ParkAfter == 0 {
		c.ParkAfter = 20 * time.Millisecond
	}
	if c.RegisterInterval == 0 {
		c.RegisterInterval = time.Second
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 5 * time.Second
	}
	return c
}

// Relay holds sessions and serves their endpoints. Create it with New,
// serve Handler, run Run until shutdown.
type Relay struct {
	cfg Config
	// fqdnName and fqdnPort are cfg.FQDN split: a session's host is
	// {uniq}.{fqdnName}[:{fqdnPort}].
	fqdnName, fqdnPort string
	bus                Bus
	log                *zap.Logger
	reg                *session.Registry
	mux                *http.ServeMux
	pool               sync.Pool // *[]byte response buffers

	draining atomic.Bool

	// registered is closed at the relay's first registration on the bus
	// (Registered).
	registered     chan struct{}
	registeredOnce sync.Once

	// parked holds the parked polls (*parked) whose connection is
	// parked, for sweepParked.
	parked sync.Map

	// orphans are sessions made for a router that stopped waiting; the
	// router released their count itself.
	orphans sync.Map
	// unreleased are token counts whose release failed (bus down); the
	// register loop retries them.
	unreleasedMu sync.Mutex
	unreleased   []string
}

// New checks cfg and returns a relay. It starts nothing.
func New(cfg Config, bus Bus, log *zap.Logger) (*Relay, error) {
	cfg = cfg.withDefaults()
	if cfg.ID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg.ID = "relay-" + hex.EncodeToString(b[:])
	}
	if cfg.FQDN == "" {
		return nil, errors.New("relay: FQDN is required")
	}
	if strings.Contains(cfg.FQDN, "/") || strings.HasPrefix(cfg.FQDN, ".") {
		return nil, fmt.Errorf("relay: FQDN %q must be a host[:port] without scheme", cfg.FQDN)
	}
	if cfg.MaxTTL < cfg.DefaultTTL {
		return nil, errors.New("relay: MaxTTL is below DefaultTTL")
	}
	r := &Relay{cfg: cfg, bus: bus, log: log.With(zap.String("relay", cfg.ID)), registered: make(chan struct{})}
	scfg := cfg.Session
	scfg.OnEnd = r.onEnd
	reg, err := session.New(scfg, r.log)
	if err != nil {
		return nil, err
	}
	r.reg = reg
	r.fqdnName, r.fqdnPort = splitHostPort(cfg.FQDN)
	if r.cfg.MaxBody == 0 {
		r.cfg.MaxBody = 3*reg.Config().MaxMessage + 64<<10
	}
	// The mux sees only what ServeHTTP's table does not take: it
	// redirects unclean session paths, gives the handlers what is left
	// (/s/a/b) and answers 404 to the rest.
	r.mux = http.NewServeMux()
	for _, rt := range routes {
		r.mux.HandleFunc("/"+string(rt.letter)+"/", func(w http.ResponseWriter, req *http.Request) { rt.handle(r, w, req) })
	}
	return r, nil
}

// ID is the relay's bus name.
func (r *Relay) ID() string { return r.cfg.ID }

// Registry exposes the relay's sessions (for metrics and tests).
func (r *Relay) Registry() *session.Registry { return r.reg }

// Handler serves /s/, /c/ and /j/.
func (r *Relay) Handler() http.Handler { return r }

// MaxBody is the largest request body the relay takes (Config.MaxBody).
func (r *Relay) MaxBody() int64 { return r.cfg.MaxBody }

// Info is what the relay publishes about itself.
func (r *Relay) Info() control.RelayInfo {
	return control.RelayInfo{
		ID:       r.cfg.ID,
		FQDN:     r.cfg.FQDN,
		Sessions: r.reg.Len(),
		Capacity: r.cfg.Capacity,
		Draining: r.draining.Load(),
		Tokens:   r.tokenCounts(),
	}
}

// tokenCounts counts the live sessions whose count this relay holds, by
// token (orphans were released by their router).
func (r *Relay) tokenCounts() map[string]int {
	counts := make(map[string]int)
	r.reg.Range(func(s *session.Session) bool {
		if _, orphan := r.orphans.Load(s.ID); !orphan && !s.Ended() {
			counts[s.Token]++
		}
		return true
	})
	return counts
}

// Drain stops the relay taking new sessions and says so on the bus at
// once; live sessions go on.
func (r *Relay) Drain(ctx context.Context) {
	r.draining.Store(true)
	if err := r.bus.Register(ctx, r.Info()); err != nil {
		r.log.Warn("publishing draining state", zap.Error(err))
	}
}

// Run registers the relay, serves establish requests and sweeps parked
// polls whose client went away until ctx is done, then unregisters. It
// does not end sessions: call Shutdown.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.registerLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		r.sweepLoop(ctx)
	}()
	err := r.bus.Serve(ctx, r.cfg.ID, r.Establish)
	wg.Wait()
	uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if uerr := r.bus.Unregister(uctx, r.cfg.ID); uerr != nil {
		r.log.Warn("unregistering", zap.Error(uerr))
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func (r *Relay) registerLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.RegisterInterval)
	defer t.Stop()
	failing := false
	for {
		rctx, cancel := context.WithTimeout(ctx, r.cfg.RegisterInterval)
		err := r.bus.Register(rctx, r.Info())
		if err == nil {
			r.registeredOnce.Do(func() { close(r.registered) })
			r.retryReleases(rctx)
		}
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			r.log.Warn("registering on the bus failed; retrying", zap.Error(err))
			failing = true
		case err == nil && failing:
			r.log.Info("registered on the bus again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Registered is closed once the relay has registered on the bus for
// the first time: before, no router can pick it, so a process's /readyz
// says not ready and a load balancer sends it no creates.
func (r *Relay) Registered() <-chan struct{} { return r.registered }

// Sessions returns how many sessions the relay holds: live, and known
// (ended ones whose close message a client may still collect included).
func (r *Relay) Sessions() session.Counts { return r.reg.Counts() }

// WaitSessions returns once cond holds for the relay's session counts,
// checked at every change, or ctx's error when ctx ends first. A drain
// waits so for the live sessions to end, then for the clients to
// collect their close message.
func (r *Relay) WaitSessions(ctx context.Context, cond func(session.Counts) bool) error {
	return r.reg.WaitUntil(ctx, cond)
}

// EndSessions ends every live session with code and reason for both
// sides (a held poll answers the close message at once); the relay goes
// on serving, so clients can collect it.
func (r *Relay) EndSessions(code int, reason string) { r.reg.EndAll(code, reason) }

// Shutdown ends every session with 1001 and waits for them, bounded by
// ctx: for their goroutines, the answers of their parked polls
// included. Stop the connections' server (httpconn) first: the
// connections answered then are closed after their answer.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.draining.Store(true)
	err := r.reg.Close(ctx, 1001, "relay shutting down")
	r.reg.Stop()
	return err
}

func (r *Relay) onSessionEnd(s *session.Session, code int) {
	if _, orphan := r.orphans.LoadAndDelete(s.ID); orphan {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.bus.Release(ctx, s.Token, r.cfg.ID); err != nil {
		r.log.Warn("releasing a token count failed; will retry", zap.String("token", s.Token), zap.Error(err))
		r.unreleasedMu.Lock()
		r.unreleased = append(r.unreleased, s.Token)
		r.unreleasedMu.Unlock()
	}
}

func (r *Relay) retryReleases(ctx context.Context) {
	r.unreleasedMu.Lock()
	todo := r.unreleased
	r.unreleased = nil
	r.unreleasedMu.Unlock()
	for i, tok := range todo {
		if err := r.bus.Release(ctx, tok, r.cfg.ID); err != nil {
			r.unreleasedMu.Lock()
			r.unreleased = append(r.unreleased, todo[i:]...)
			r.unreleasedMu.Unlock()
			return
		}
	}
}
