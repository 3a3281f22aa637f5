// Package process runs one polysocket process: its HTTP listener (the
// relay's sessions through httpconn's fast loop, everything else
// through net/http), the relay's bus loops, the health endpoints, an
// optional admin listener (metrics, profiles), and the shutdown: a relay's drain first,
// then HTTP, then the sessions. The CLI builds a Config and calls New
// and Run; SignalContext gives Run its SIGTERM.
package process

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polysocket/polysocket/httpconn"
	"github.com/polysocket/polysocket/metrics"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/zap"
)

// Config configures a Process.
type Config struct {
	// Listener is where HTTP is served; the caller opens it (the relay's
	// address guard needs its address first). Required; Run closes it.
	Listener net.Listener
	// TLS, if set, serves HTTPS on Listener.
	TLS *tls.Config
	// HTTP is the public server; its Handler serves everything but the
	// health endpoints, which New adds in front. Required.
	HTTP *http.Server
	// Relay, if set, is run, drained and shut down with the process, and
	// its session requests take httpconn's fast loop. Nil in a router.
	Relay *relay.Relay
	// Metrics counts every public response. Required.
	Metrics *metrics.Metrics
	// BusCheck reports whether the bus answers, for /readyz; nil: the
	// in-process bus, which always does.
	BusCheck func(context.Context) error
	// DrainTimeout is how long a relay's live sessions may go on at
	// shutdown; CloseGrace how long their clients then have to collect
	// the close message. ShutdownTimeout bounds HTTP's shutdown, and
	// that of the sessions. Zero: no wait.
	DrainTimeout, CloseGrace, ShutdownTimeout time.Duration
	// Admin, if set, serves the profiles, and /metrics with
	// AdminMetrics: their own listener, meant for loopback or an
	// operator network, never the public one. Run closes it.
	Admin        net.Listener
	AdminMetrics bool
	// Log is the process's logger. Required.
	Log *zap.Logger
}

// Process is one running polysocket process. Create it with New; Run
// it once.
type Process struct {
	cfg   Config
	log   *zap.Logger
	conns *httpconn.Server // a relay's connections; nil in a router
	admin *http.Server     // nil without Config.Admin

	draining atomic.Bool
}

// New checks cfg and wraps the public handler with the health
// endpoints and the response metrics. It starts nothing.
func New(cfg Config) (*Process, error) {
	if cfg.Listener == nil || cfg.HTTP == nil || cfg.HTTP.Handler == nil || cfg.Metrics == nil || cfg.Log == nil {
		return nil, errors.New("process: Listener, HTTP with a Handler, Metrics and Log are required")
	}
	p := &Process{cfg: cfg, log: cfg.Log}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", p.healthz)
	mux.HandleFunc("/readyz", p.readyz)
	mux.Handle("/", cfg.HTTP.Handler)
	var h http.Handler = mux
	if cfg.Relay != nil {
		h = relayFirst{relay: cfg.Relay.Handler(), rest: mux}
	}
	cfg.HTTP.Handler = cfg.Metrics.Middleware(h)
	if cfg.TLS != nil && cfg.Relay != nil {
		// The fast loop takes the TLS connections first (see serve), so
		// the protocols ServeTLS would offer are set here: HTTP/2 goes
		// on to net/http.
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.NextProtos = []string{"h2", "http/1.1"}
	}
	cfg.HTTP.TLSConfig = cfg.TLS
	p.cfg = cfg
	if cfg.Relay != nil {
		// The connections the fast loop gives to net/http are already
		// TLS when the main ones are: net/http sees the *tls.Conn itself.
		var err error
		p.conns, err = httpconn.New(httpconn.Config{
			HTTP: cfg.HTTP, Accept: relay.Accept, WantBody: cfg.Relay.WantBody,
			MaxBody: cfg.Relay.MaxBody(), Log: cfg.Log.Named("http"),
		})
		if err != nil {
			return nil, err
		}
	}
	if cfg.Admin != nil {
		p.admin = newAdmin(cfg.AdminMetrics, cfg.Metrics, cfg.Log)
	}
	return p, nil
}

// Addr is the public listener's address.
func (p *Process) Addr() net.Addr { return p.cfg.Listener.Addr() }

// relayFirst sends the session endpoints, which carry every message,
// straight to the relay, sparing them the mux's route-tree walk; the
// relay hands paths it does not take back to its own mux.
type relayFirst struct {
	relay, rest http.Handler
}

func (h relayFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if relay.IsEndpoint(r.URL.Path) {
		h.relay.ServeHTTP(w, r)
		return
	}
	h.rest.ServeHTTP(w, r)
}

// newAdmin is the admin listener's server. Metrics tell strangers about
// the traffic, and profiles reveal the process's state and cost CPU, so
// they have their own listener, meant for loopback or an operator
// network, and never the public handler. /debug/pprof/cmdline is left
// out: the command line may hold a Redis password.
func newAdmin(withMetrics bool, m *metrics.Metrics, log *zap.Logger) *http.Server {
	mux := http.NewServeMux()
	if withMetrics {
		mux.Handle("/metrics", m.Handler())
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("admin")),
	}
}

// healthz answers 200 while the process runs (liveness).
func (p *Process) healthz(w http.ResponseWriter, _ *http.Request) {
	plain(w, http.StatusOK, "ok\n")
}

// readyz answers 200 when the process should get traffic: a relay has
// registered on the bus (until then a create it gets would find no
// relay), the bus answers within a second and the process is not
// draining; 503 otherwise (readiness).
func (p *Process) readyz(w http.ResponseWriter, r *http.Request) {
	if p.draining.Load() {
		plain(w, http.StatusServiceUnavailable, "draining\n")
		return
	}
	if rl := p.cfg.Relay; rl != nil {
		select {
		case <-rl.Registered():
		default:
			plain(w, http.StatusServiceUnavailable, "not registered\n")
			return
		}
	}
	if p.cfg.BusCheck != nil {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := p.cfg.BusCheck(ctx); err != nil {
			plain(w, http.StatusServiceUnavailable, "bus unreachable\n")
			return
		}
	}
	plain(w, http.StatusOK, "ready\n")
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// Run serves until ctx is done or serving fails, then shuts down in
// order (see drain for a relay): HTTP stops taking connections and
// finishes the requests in flight, creates included; then the relay's
// sessions and its bus loops. It returns serving's error, if any.
func (p *Process) Run(ctx context.Context) error {
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	p.start(runCtx, &wg, errc)
	var err error
	select {
	case <-ctx.Done():
		p.log.Info("shutting down")
	case err = <-errc:
	}
	p.stop()
	stopRun()
	wg.Wait()
	p.log.Info("stopped")
	return err
}

// start runs the relay's loops, HTTP and the admin server on goroutines counted in
// wg; a failure goes to errc.
func (p *Process) start(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) {
	goFunc := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	if rl := p.cfg.Relay; rl != nil {
		goFunc(func() {
			if err := rl.Run(ctx); err != nil {
				errc <- fmt.Errorf("relay: %w", err)
			}
		})
	}
	goFunc(func() {
		if err := p.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serving HTTP: %w", err)
		}
	})
	if p.admin != nil {
		goFunc(func() {
			if err := p.admin.Serve(p.cfg.Admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				p.log.Warn("serving the admin listener", zap.Error(err))
			}
		})
		p.log.Info("admin listening (/metrics, /debug/pprof/)", zap.String("addr", p.cfg.Admin.Addr().String()))
	}
	p.log.Info("listening", zap.String("addr", p.cfg.Listener.Addr().String()), zap.Bool("tls", p.cfg.TLS != nil))
}

// serve serves the public listener: a relay's session requests in the
// fast loop, the connections it gives over in net/http.
func (p *Process) serve() error {
	ln, srv := p.cfg.Listener, p.cfg.HTTP
	switch {
	case p.conns != nil:
		if p.cfg.TLS != nil {
			ln = tls.NewListener(ln, p.cfg.TLS)
		}
		return p.conns.Serve(ln)
	case p.cfg.TLS != nil:
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// stop drains a relay, stops HTTP, then ends the relay's sessions and
// waits for them.
func (p *Process) stop() {
	if p.cfg.Relay != nil {
		p.drain()
	} else {
		p.setDraining()
	}
	sctx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
	defer cancel()
	if p.conns != nil {
		// net/http and the fast loop; parked polls are answered by the
		// relay's Shutdown below.
		if err := p.conns.Shutdown(sctx); err != nil {
			p.log.Warn("HTTP shutdown", zap.Error(err))
		}
	} else if err := p.cfg.HTTP.Shutdown(sctx); err != nil {
		p.log.Warn("HTTP shutdown", zap.Error(err))
		p.cfg.HTTP.Close()
	}
	p.log.Info("HTTP server stopped")
	if p.cfg.Relay != nil {
		// Every session has ended; this waits for their goroutines.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.cfg.Relay.Shutdown(cctx); err != nil {
			p.log.Warn("closing sessions", zap.Error(err))
		}
		cancel()
	}
	if p.admin != nil {
		// Closed last, so the drain can be watched; a running CPU
		// profile or trace is cut short rather than awaited.
		p.admin.Close()
	}
}

// drain runs a relay's graceful shutdown while HTTP is still served:
//  1. the relay says it is draining on the bus at once, so routers stop
//     picking it, and refuses new sessions;
//  2. live sessions go on until they end or the drain timeout;
//  3. the rest end with 1001: the target gets a close frame, a held poll
//     answers the close message at once;
//  4. clients have the close grace to collect their close message (a
//     session is forgotten once its close message is delivered or acked).
func (p *Process) drain() {
	rl := p.cfg.Relay
	dctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	rl.Drain(dctx)
	// Only now is /readyz 503: by then routers already skip this relay.
	p.setDraining()
	if rl.WaitSessions(dctx, func(c session.Counts) bool { return c.Live == 0 }) != nil {
		p.log.Info("drain timeout: closing the remaining sessions with 1001", zap.Int("sessions", rl.Sessions().Live))
	}
	rl.EndSessions(1001, "relay shutting down")
	gctx, cancel2 := context.WithTimeout(context.Background(), p.cfg.CloseGrace)
	defer cancel2()
	if rl.WaitSessions(gctx, func(c session.Counts) bool { return c.Known == 0 }) != nil {
		p.log.Info("close grace over: stopping HTTP", zap.Int("uncollected", rl.Sessions().Known))
	}
}

// setDraining turns /readyz to 503 and polysocket_draining to 1.
func (p *Process) setDraining() {
	p.draining.Store(true)
	p.cfg.Metrics.SetDraining(true)
}
