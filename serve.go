package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/polysocket/polysocket/netguard"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/router"
	"github.com/polysocket/polysocket/session"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
)

func listenFlag(def string) cli.Flag {
	return &cli.StringFlag{Name: "listen", Value: def, Usage: "address to serve HTTP on", EnvVars: env("LISTEN")}
}

func serverFlags() []cli.Flag {
	return append(logFlags(),
		&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second, Usage: "how long in-flight requests may take to finish at shutdown", EnvVars: env("SHUTDOWN_TIMEOUT")},
		&cli.IntFlag{Name: "max-header-bytes", Value: 64 << 10, Usage: "largest request line and headers (a longer URL gets 431)", EnvVars: env("MAX_HEADER_BYTES")},
	)
}

func relayFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "fqdn", Usage: "the relay's public host[:port]; sessions live at {uniq}.{fqdn} (needs a wildcard DNS record)", EnvVars: env("FQDN")},
		&cli.StringFlag{Name: "id", Usage: "the relay's name on the bus (default: random)", EnvVars: env("ID")},
		&cli.IntFlag{Name: "capacity", Value: 10000, Usage: "most live sessions", EnvVars: env("CAPACITY")},
		&cli.DurationFlag{Name: "dial-timeout", Value: 10 * time.Second, Usage: "time allowed to open the target WebSocket", EnvVars: env("DIAL_TIMEOUT")},
		&cli.DurationFlag{Name: "idle-timeout", Value: 30 * time.Second, Usage: "a session with no request for this long ends (the target gets 1001)", EnvVars: env("IDLE_TIMEOUT")},
		&cli.DurationFlag{Name: "ping-interval", Value: 20 * time.Second, Usage: "how often targets are pinged", EnvVars: env("PING_INTERVAL")},
		&cli.DurationFlag{Name: "max-ttl", Value: 60 * time.Second, Usage: "longest a poll is held", EnvVars: env("MAX_TTL")},
		&cli.Int64Flag{Name: "max-message", Value: 1 << 20, Usage: "largest message either way, bytes", EnvVars: env("MAX_MESSAGE")},
		&cli.Int64Flag{Name: "max-buffered", Value: 1 << 20, Usage: "bytes buffered per session before the relay stops reading the target", EnvVars: env("MAX_BUFFERED")},
		&cli.BoolFlag{Name: "forward-origin", Value: true, Usage: "pass the browser's Origin to the target", EnvVars: env("FORWARD_ORIGIN")},
		&cli.BoolFlag{Name: "forward-for", Value: true, Usage: "pass the browser's address to the target in X-Forwarded-For", EnvVars: env("FORWARD_FOR")},
		&cli.BoolFlag{Name: "allow-private", Usage: "let the relay dial private, loopback and other special-purpose addresses (see docs/SSRF.md)", EnvVars: env("ALLOW_PRIVATE")},
		&cli.StringSliceFlag{Name: "allow-cidr", Usage: "a special-purpose range the relay may dial anyway (repeatable), e.g. 10.1.2.0/24", EnvVars: env("ALLOW_CIDR")},
		&cli.DurationFlag{Name: "drain-timeout", Value: 30 * time.Second, Usage: "at SIGTERM, how long live sessions may go on before they are closed with 1001", EnvVars: env("DRAIN_TIMEOUT")},
	}
}

func routerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "establish-timeout", Value: 15 * time.Second, Usage: "how long a relay may take to answer an establish request", EnvVars: env("ESTABLISH_TIMEOUT")},
	}
}

// relayConfig builds the relay's configuration from its flags.
func relayConfig(c *cli.Context, fqdn string, self []netip.AddrPort, devLoopback bool) (relay.Config, error) {
	allow := make([]netip.Prefix, 0, len(c.StringSlice("allow-cidr")))
	for _, s := range c.StringSlice("allow-cidr") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return relay.Config{}, fmt.Errorf("--allow-cidr %q: %w", s, err)
		}
		allow = append(allow, p)
	}
	if devLoopback {
		allow = append(allow, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	}
	guard := netguard.New(netguard.Config{AllowPrivate: c.Bool("allow-private"), Allow: allow, Self: self})
	return relay.Config{
		ID:       c.String("id"),
		FQDN:     fqdn,
		Capacity: c.Int("capacity"),
		MaxTTL:   c.Duration("max-ttl"),
		Session: session.Config{
			DialTimeout:   c.Duration("dial-timeout"),
			IdleTimeout:   c.Duration("idle-timeout"),
			PingInterval:  c.Duration("ping-interval"),
			MaxMessage:    c.Int64("max-message"),
			MaxBuffered:   c.Int64("max-buffered"),
			ForwardOrigin: c.Bool("forward-origin"),
			ForwardFor:    c.Bool("forward-for"),
			DialContext:   guard.Dialer(c.Duration("dial-timeout")).DialContext,
		},
	}, nil
}

func routerConfig(c *cli.Context) router.Config {
	return router.Config{EstablishTimeout: c.Duration("establish-timeout")}
}

// selfAddrs are the addresses the relay serves on, which it must never
// dial.
func selfAddrs(ln net.Listener) []netip.AddrPort {
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		return nil
	}
	return []netip.AddrPort{ap}
}

// newServer is an http.Server with timeouts against slow clients; the
// write timeout leaves room for the longest poll.
func newServer(c *cli.Context, h http.Handler, log *zap.Logger, maxTTL time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      maxTTL + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    c.Int("max-header-bytes"),
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}

// service is what runs inside a process: a relay, a router, or both.
type service struct {
	log   *zap.Logger
	srv   *http.Server
	ln    net.Listener
	relay *relay.Relay // nil in a router
	// drainTimeout is how long live sessions may go on at shutdown.
	drainTimeout    time.Duration
	shutdownTimeout time.Duration
}

// run serves until ctx is done, then shuts down in order: the relay stops
// taking sessions and lets live ones go on for the drain timeout, then
// closes the rest with 1001 (their held polls answer with the close
// message), then the HTTP server finishes in-flight requests.
func (s *service) run(ctx context.Context) error {
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if s.relay != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.relay.Run(runCtx); err != nil {
				errc <- fmt.Errorf("relay: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serving HTTP: %w", err)
		}
	}()
	s.log.Info("listening", zap.String("addr", s.ln.Addr().String()))

	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case err = <-errc:
	}
	if s.relay != nil {
		s.drain()
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	if serr := s.srv.Shutdown(sctx); serr != nil {
		s.log.Warn("HTTP shutdown", zap.Error(serr))
		s.srv.Close()
	}
	stopRun()
	wg.Wait()
	return err
}

func (s *service) drain() {
	dctx, cancel := context.WithTimeout(context.Background(), s.drainTimeout)
	defer cancel()
	s.relay.Drain(dctx)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for s.relay.Registry().Len() > 0 {
		select {
		case <-dctx.Done():
			s.log.Info("drain timeout: closing the remaining sessions", zap.Int("sessions", s.relay.Registry().Len()))
		case <-t.C:
			continue
		}
		break
	}
	sctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := s.relay.Shutdown(sctx); err != nil {
		s.log.Warn("closing sessions", zap.Error(err))
	}
}
