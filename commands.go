package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

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
			&cli.BoolFlag{Name: "dev-any-loopback", Usage: "let the development token reach any ws://localhost port even when --listen is not a loopback address (by default it then reaches only the built-in echo)", EnvVars: env("DEV_ANY_LOOPBACK")},
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
// --token; with neither, the development token dev.
func staticTokens(c *cli.Context, log *zap.Logger, dev token.Token) (*token.Static, error) {
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
		warnOpenToken(log, name, len(origins) == 0, c.Int("token-limit") == 0)
		if len(origins) == 0 {
			origins = []string{"*"}
		}
		toks = append(toks, token.Token{Name: name, Targets: c.StringSlice("token-target"), Origins: origins, Limit: c.Int("token-limit")})
	}
	if len(toks) == 0 {
		log.Warn("DEVELOPMENT ONLY: using the built-in token \"dev\" (targets " + strings.Join(dev.Targets, " ") +
			", from any origin, no limit); give --tokens or --token in production")
		toks = []token.Token{dev}
	}
	return token.NewStatic(toks...)
}

// usesDevToken reports whether `both` runs with the development token:
// no --redis, --tokens or --token.
func usesDevToken(c *cli.Context) bool {
	return c.String("redis") == "" && c.String("tokens") == "" && c.String("token") == ""
}

// devToken is the development token of `both` for a public listener ln,
// and whether the relay may dial loopback for it. On a loopback listener
// (a laptop) it reaches any ws://localhost:* and ws://127.0.0.1:*; on
// any other address (a container, a server), where any page anywhere
// could otherwise have the relay dial every port of the machine's
// loopback, only the built-in echo target, unless --dev-any-loopback.
func devToken(c *cli.Context, log *zap.Logger, ln net.Listener, fqdn string) (token.Token, bool) {
	addr := ln.Addr().(*net.TCPAddr)
	switch {
	case addr.IP.IsLoopback():
		return token.Dev(), true
	case c.Bool("dev-any-loopback"):
		log.Warn("--dev-any-loopback: the dev token lets any page have the relay dial any ws://localhost port of this machine, " +
			"although it listens on " + addr.String() + ", which is not loopback")
		return token.Dev(), true
	}
	port := strconv.Itoa(addr.Port)
	log.Info("listening on " + addr.String() + ", which is not loopback: the dev token reaches only the built-in echo target " +
		"(ws://localhost:" + port + "/echo); --dev-any-loopback lets it reach any ws://localhost port")
	return token.DevEcho("localhost:"+port, "127.0.0.1:"+port, fqdn), false
}

// warnOpenToken warns at start about a --token without --token-origin
// or --token-limit. A token is public (it is in every page that uses
// it), so what bounds its abuse is its target patterns, its origins
// (against browsers only) and its limit; an operator who left out the
// last two should hear so once.
func warnOpenToken(log *zap.Logger, name string, anyOrigin, noLimit bool) {
	var missing []string
	if anyOrigin {
		missing = append(missing, "--token-origin (pages of any site may use it)")
	}
	if noLimit {
		missing = append(missing, "--token-limit (no bound on its live connections)")
	}
	if len(missing) == 0 {
		return
	}
	log.Warn("--token is public (it sits in every page that uses it) and has no "+strings.Join(missing, " and no ")+
		"; only its target patterns and the per-address create limit bound its use (docs/TOKENS.md)",
		zap.String("token", name))
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
	ls, err := openListeners(c)
	if err != nil {
		return err
	}
	svc, cleanup, err := setupBoth(c, log, ls)
	if err != nil {
		ls.close()
		return err
	}
	defer cleanup()
	return svc.Run(c.Context)
}

// setupBoth builds `both`: a router and a relay on one listener, on an
// in-process bus (or Redis with --redis).
func setupBoth(c *cli.Context, log *zap.Logger, ls listeners) (*process.Process, func(), error) {
	fqdn := c.String("fqdn")
	if fqdn == "" {
		fqdn = "localhost:" + strconv.Itoa(ls.public.Addr().(*net.TCPAddr).Port)
	}
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	fail := func(err error) (*process.Process, func(), error) {
		cleanup()
		return nil, nil, err
	}
	// Production relays dial only public addresses unless told
	// otherwise; the development token reaches local servers (see
	// devToken). The relay never dials itself: a target naming it goes
	// to the built-in echo, or is refused.
	place := relayPlace{fqdn: fqdn, self: ls.selfAddrs()}
	b, err := openBothBus(c, log, ls.public, fqdn, &place)
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, b.close)
	var d *demo.Demo
	if c.Bool("echo") {
		d = demo.Handler(log.Named("demo"))
		cleanups = append(cleanups, func() { d.Close() })
		tlsConf, err := serverTLS(c)
		if err != nil {
			return fail(err)
		}
		eb, err := startEchoBackend(d, tlsConf, log)
		if err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, eb.close)
		place.echo = eb.dial(c.Duration("dial-timeout"))
	}
	m := metrics.New()
	rl, err := newRelay(c, place, b.bus, m, log)
	if err != nil {
		return fail(err)
	}
	rcfg, err := routerConfig(c, m, log)
	if err != nil {
		return fail(err)
	}
	rt, err := router.New(rcfg, m.RouterBus(b.bus), m.TokenStore(b.tokens), log)
	if err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	if err := mountRouter(c, mux, rt, rcfg, m); err != nil {
		return fail(err)
	}
	mountRelay(mux, rl)
	if d != nil {
		mux.Handle("/", d)
		log.Info("demo page at http://" + fqdn + "/ with an echo WebSocket at ws://" + fqdn + "/echo")
	}
	svc, err := newProcess(c, log, ls, mux, rl, m, b.check)
	if err != nil {
		return fail(err)
	}
	log.Info("polysocket both", zap.String("fqdn", fqdn), zap.String("sessions", "{uniq}."+fqdn))
	return svc, cleanup, nil
}

// bothBus is the bus and token store of `both`.
type bothBus struct {
	bus interface {
		router.Bus
		relay.Bus
	}
	tokens router.TokenStore
	// check is the readiness check of the bus; nil for the in-process
	// one, which always answers.
	check func(context.Context) error
	close func()
}

// openBothBus opens Redis with --redis; without, an in-process bus with
// the static tokens, and the development token's loopback reach set in
// place.
func openBothBus(c *cli.Context, log *zap.Logger, ln net.Listener, fqdn string, place *relayPlace) (bothBus, error) {
	if c.String("redis") != "" {
		rb, err := openRedis(c, log)
		if err != nil {
			return bothBus{}, err
		}
		return bothBus{bus: rb, tokens: rb, check: redisCheck(rb), close: rb.Close}, nil
	}
	var dev token.Token
	if usesDevToken(c) {
		dev, place.loopback = devToken(c, log, ln, fqdn)
	}
	st, err := staticTokens(c, log, dev)
	if err != nil {
		return bothBus{}, err
	}
	return bothBus{bus: membus.New(0), tokens: st, close: func() {}}, nil
}

// newRelay builds a relay with its metrics wired in.
func newRelay(c *cli.Context, place relayPlace, bus relay.Bus, m *metrics.Metrics, log *zap.Logger) (*relay.Relay, error) {
	cfg, err := relayConfig(c, place)
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
	m.RelayLimits(cfg.Capacity, cfg.Session.MaxBufferedTotal)
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
	rcfg, err := routerConfig(c, m, log)
	if err != nil {
		return err
	}
	rt, err := router.New(rcfg, m.RouterBus(rb), m.TokenStore(rb), log)
	if err != nil {
		return err
	}
	ls, err := openListeners(c)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	if err := mountRouter(c, mux, rt, rcfg, m); err != nil {
		ls.close()
		return err
	}
	svc, err := newProcess(c, log, ls, mux, nil, m, redisCheck(rb))
	if err != nil {
		ls.close()
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
	ls, err := openListeners(c)
	if err != nil {
		return err
	}
	rb, err := openRedis(c, log)
	if err != nil {
		ls.close()
		return err
	}
	defer rb.Close()
	m := metrics.New()
	rl, err := newRelay(c, relayPlace{fqdn: c.String("fqdn"), self: ls.selfAddrs()}, rb, m, log)
	if err != nil {
		ls.close()
		return err
	}
	mux := http.NewServeMux()
	mountRelay(mux, rl)
	svc, err := newProcess(c, log, ls, mux, rl, m, redisCheck(rb))
	if err != nil {
		ls.close()
		return err
	}
	log.Info("polysocket relay", zap.String("id", rl.ID()), zap.String("fqdn", c.String("fqdn")))
	return svc.Run(c.Context)
}

// mountRouter mounts /create and the browser library (minified here, at
// startup).
func mountRouter(c *cli.Context, mux *http.ServeMux, rt *router.Router, cfg router.Config, m *metrics.Metrics) error {
	mux.Handle("/create", createLimit(c, rt, cfg, m))
	lib, err := client.New()
	if err != nil {
		return err
	}
	lib.Mount(mux)
	return nil
}

func mountRelay(mux *http.ServeMux, rl *relay.Relay) {
	for _, p := range relay.Patterns() {
		mux.Handle(p, rl.Handler())
	}
}
