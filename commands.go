package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/polysocket/polysocket/client"
	"github.com/polysocket/polysocket/demo"
	"github.com/polysocket/polysocket/membus"
	"github.com/polysocket/polysocket/metrics"
	"github.com/polysocket/polysocket/process"
	"github.com/polysocket/polysocket/redisbus"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/router"
	"github.com/polysocket/polysocket/token"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
)

func redisFlag(required bool) cli.Flag {
	return &cli.StringFlag{Name: "redis", Required: required, Usage: "Redis URL for the control plane: redis://[user:password@]host:port[/db], rediss:// for TLS, several host:port for a Cluster (see docs/DEPLOY.md)", EnvVars: env("REDIS")}
}

func tokenFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "tokens", Usage: "JSON file of tokens (see docs/TOKENS.md); turns the development token off", EnvVars: env("TOKENS")},
		&cli.StringFlag{Name: "token", Usage: "define one token by flags: its name (with --token-target, --token-origin, --token-limit); turns the development token off", EnvVars: env("TOKEN")},
		&cli.StringSliceFlag{Name: "token-target", Usage: "target pattern of --token (repeatable)", EnvVars: env("TOKEN_TARGET")},
		&cli.StringSliceFlag{Name: "token-origin", Usage: "origin pattern of --token (repeatable; default *)", EnvVars: env("TOKEN_ORIGIN")},
		&cli.IntFlag{Name: "token-limit", Usage: "connection limit of --token (0: none)", EnvVars: env("TOKEN_LIMIT")},
	}
}

func concat(groups ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func bothCommand() *cli.Command {
	return &cli.Command{
		Name:  "both",
		Usage: "run a router and a relay in one process (no Redis needed; the default for development)",
		Flags: concat([]cli.Flag{
			listenFlag("127.0.0.1:8080"),
			redisFlag(false),
			&cli.BoolFlag{Name: "echo", Value: true, Usage: "serve the demo page at / and an echo WebSocket at /echo", EnvVars: env("ECHO")},
		}, tokenFlags(), relayFlags(), routerFlags(), serverFlags()),
		Action: runBoth,
	}
}

func routerCommand() *cli.Command {
	return &cli.Command{
		Name:   "router",
		Usage:  "run a router: /create and /polysocket.js, relays found through Redis",
		Flags:  concat([]cli.Flag{listenFlag("127.0.0.1:8081"), redisFlag(true)}, routerFlags(), serverFlags()),
		Action: runRouter,
	}
}

func relayCommand() *cli.Command {
	return &cli.Command{
		Name:   "relay",
		Usage:  "run a relay: sessions at {uniq}.{fqdn}, registered in Redis",
		Flags:  concat([]cli.Flag{listenFlag("127.0.0.1:8082"), redisFlag(true)}, relayFlags(), serverFlags()),
		Action: runRelay,
	}
}

// staticTokens builds the embedded-mode token store from --tokens or
// --token; with neither, the development token.
func staticTokens(c *cli.Context, log *zap.Logger) (*token.Static, error) {
	var toks []token.Token
	if path := c.String("tokens"); path != "" {
		t, err := token.LoadFile(path)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t...)
	}
	if name := c.String("token"); name != "" {
		origins := c.StringSlice("token-origin")
		if len(origins) == 0 {
			origins = []string{"*"}
		}
		toks = append(toks, token.Token{Name: name, Targets: c.StringSlice("token-target"), Origins: origins, Limit: c.Int("token-limit")})
	}
	if len(toks) == 0 {
		log.Warn("DEVELOPMENT ONLY: using the built-in token \"dev\" (any ws://localhost and ws://127.0.0.1 target, from any origin, no limit); give --tokens or --token in production")
		toks = []token.Token{token.Dev()}
	}
	return token.NewStatic(toks...)
}

func openRedis(c *cli.Context, log *zap.Logger) (*redisbus.Bus, error) {
	return redisbus.New(redisbus.Config{URL: c.String("redis")}, log.Named("redis"))
}

func runBoth(c *cli.Context) error {
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if err := tuneRuntime(c, log); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	svc, cleanup, err := setupBoth(c, log, ln)
	if err != nil {
		ln.Close()
		return err
	}
	defer cleanup()
	return svc.Run(c.Context)
}

// setupBoth builds `both`: a router and a relay on one listener, on an
// in-process bus (or Redis with --redis).
func setupBoth(c *cli.Context, log *zap.Logger, ln net.Listener) (*process.Process, func(), error) {
	fqdn := c.String("fqdn")
	if fqdn == "" {
		fqdn = "localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	var (
		bus interface {
			router.Bus
			relay.Bus
		}
		tokens   router.TokenStore
		busCheck func(context.Context) error
		cleanups []func()
	)
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	dev := false
	if c.String("redis") != "" {
		rb, err := openRedis(c, log)
		if err != nil {
			return nil, nil, err
		}
		cleanups = append(cleanups, rb.Close)
		bus, tokens, busCheck = rb, rb, redisCheck(rb)
	} else {
		st, err := staticTokens(c, log)
		if err != nil {
			return nil, nil, err
		}
		dev = c.String("tokens") == "" && c.String("token") == ""
		bus, tokens = membus.New(0), st
	}
	// The development default reaches local echo servers; production
	// relays dial only public addresses unless told otherwise. The relay
	// may not dial its own listener, except for the demo echo target
	// that lives on it.
	var self []netip.AddrPort
	if !c.Bool("echo") {
		self = selfAddrs(ln)
	}
	m := metrics.New()
	rl, err := newRelay(c, fqdn, self, dev, bus, m, log)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	rcfg, err := routerConfig(c, m)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	rt, err := router.New(rcfg, m.RouterBus(bus), m.TokenStore(tokens), log)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mountRouter(c, mux, rt, rcfg, m)
	mountRelay(mux, rl)
	if c.Bool("echo") {
		d := demo.Handler(log.Named("demo"))
		cleanups = append(cleanups, func() { d.Close() })
		mux.Handle("/", d)
		log.Info("demo page at http://" + fqdn + "/ with an echo WebSocket at ws://" + fqdn + "/echo")
	}
	svc, err := newProcess(c, log, ln, mux, rl, m, busCheck)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	log.Info("polysocket both", zap.String("fqdn", fqdn), zap.String("sessions", "{uniq}."+fqdn))
	return svc, cleanup, nil
}

// newRelay builds a relay with its metrics wired in.
func newRelay(c *cli.Context, fqdn string, self []netip.AddrPort, dev bool, bus relay.Bus, m *metrics.Metrics, log *zap.Logger) (*relay.Relay, error) {
	cfg, err := relayConfig(c, fqdn, self, dev)
	if err != nil {
		return nil, err
	}
	cfg.Metrics = m
	cfg.Session.Counters = m.SessionCounters()
	rl, err := relay.New(cfg, m.RelayBus(bus), log)
	if err != nil {
		return nil, err
	}
	m.WatchRelay(rl.Registry())
	return rl, nil
}

// redisCheck is the readiness check of a Redis bus: it answers a relay
// listing.
func redisCheck(rb *redisbus.Bus) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := rb.Relays(ctx)
		return err
	}
}

func runRouter(c *cli.Context) error {
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	rb, err := openRedis(c, log)
	if err != nil {
		return err
	}
	defer rb.Close()
	m := metrics.New()
	rcfg, err := routerConfig(c, m)
	if err != nil {
		return err
	}
	rt, err := router.New(rcfg, m.RouterBus(rb), m.TokenStore(rb), log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mountRouter(c, mux, rt, rcfg, m)
	svc, err := newProcess(c, log, ln, mux, nil, m, redisCheck(rb))
	if err != nil {
		ln.Close()
		return err
	}
	return svc.Run(c.Context)
}

func runRelay(c *cli.Context) error {
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if c.String("fqdn") == "" {
		return fmt.Errorf("--fqdn is required: the relay's public host[:port]")
	}
	if err := tuneRuntime(c, log); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	rb, err := openRedis(c, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer rb.Close()
	m := metrics.New()
	rl, err := newRelay(c, c.String("fqdn"), selfAddrs(ln), false, rb, m, log)
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mountRelay(mux, rl)
	svc, err := newProcess(c, log, ln, mux, rl, m, redisCheck(rb))
	if err != nil {
		ln.Close()
		return err
	}
	log.Info("polysocket relay", zap.String("id", rl.ID()), zap.String("fqdn", c.String("fqdn")))
	return svc.Run(c.Context)
}

func mountRouter(c *cli.Context, mux *http.ServeMux, rt *router.Router, cfg router.Config, m *metrics.Metrics) {
	mux.Handle("/create", createLimit(c, rt, cfg, m))
	mux.Handle("/polysocket.js", client.Handler())
}

func mountRelay(mux *http.ServeMux, rl *relay.Relay) {
	for _, p := range relay.Patterns() {
		mux.Handle(p, rl.Handler())
	}
}
