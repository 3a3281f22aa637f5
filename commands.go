package main

import (
	"fmt"
	"strings"

	"github.com/polysocket/polysocket/process"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/session"
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
			&cli.BoolFlag{Name: "echo", Value: process.DefaultSetup().Echo, Usage: "serve the demo page at / and an echo WebSocket at /echo", EnvVars: env("ECHO")},
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

func listenFlag(def string) cli.Flag {
	return &cli.StringFlag{Name: "listen", Value: def, Usage: "address to serve HTTP on", EnvVars: env("LISTEN")}
}

// serverFlags are every process's flags; their defaults are
// process.DefaultSetup's.
func serverFlags() []cli.Flag {
	d := process.DefaultSetup()
	return append(logFlags(),
		&cli.DurationFlag{Name: "shutdown-timeout", Value: d.ShutdownTimeout, Usage: "how long in-flight requests may take to finish at shutdown", EnvVars: env("SHUTDOWN_TIMEOUT")},
		&cli.IntFlag{Name: "max-header-bytes", Value: d.Server.MaxHeaderBytes, Usage: "largest request line and headers (a longer URL gets 431)", EnvVars: env("MAX_HEADER_BYTES")},
		&cli.DurationFlag{Name: "read-header-timeout", Value: d.Server.ReadHeaderTimeout, Usage: "time a client has to send its request line and headers (cuts off slowloris clients)", EnvVars: env("READ_HEADER_TIMEOUT")},
		&cli.DurationFlag{Name: "read-timeout", Value: d.Server.ReadTimeout, Usage: "time a client has to send a whole request, body included", EnvVars: env("READ_TIMEOUT")},
		&cli.DurationFlag{Name: "http-idle-timeout", Value: d.Server.IdleTimeout, Usage: "how long an idle keep-alive connection stays open", EnvVars: env("HTTP_IDLE_TIMEOUT")},
		&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (chain) file: serve HTTPS instead of HTTP (with --tls-key; a relay needs a wildcard certificate for *.fqdn too)", EnvVars: env("TLS_CERT")},
		&cli.StringFlag{Name: "tls-key", Usage: "PEM private key file of --tls-cert", EnvVars: env("TLS_KEY")},
		&cli.StringFlag{Name: "admin-listen", Value: d.AdminListen, Usage: "address of the admin listener, which serves /metrics and /debug/pprof/ (never the public one; keep it off the internet); empty or \"off\": none", EnvVars: env("ADMIN_LISTEN")},
		&cli.BoolFlag{Name: "metrics", Value: d.Metrics, Usage: "serve Prometheus metrics at /metrics on --admin-listen", EnvVars: env("METRICS")},
	)
}

// relayFlags are a relay's flags; their defaults are the relay's and
// the sessions' own (relay.DefaultConfig), and the drain's
// (process.DefaultSetup).
func relayFlags() []cli.Flag {
	pd := process.DefaultSetup()
	rd := pd.Relay
	sd := rd.Session
	return []cli.Flag{
		&cli.StringFlag{Name: "fqdn", Usage: "the relay's public host[:port]; sessions live at {uniq}.{fqdn} (needs a wildcard DNS record)", EnvVars: env("FQDN")},
		&cli.StringFlag{Name: "id", Usage: "the relay's name on the bus (default: random)", EnvVars: env("ID")},
		&cli.IntFlag{Name: "capacity", Value: rd.Capacity, Usage: "most live sessions", EnvVars: env("CAPACITY")},
		&cli.DurationFlag{Name: "dial-timeout", Value: sd.DialTimeout, Usage: "time allowed to open the target WebSocket", EnvVars: env("DIAL_TIMEOUT")},
		&cli.DurationFlag{Name: "idle-timeout", Value: sd.IdleTimeout, Usage: "a session with no request for this long ends (the target gets 1001)", EnvVars: env("IDLE_TIMEOUT")},
		&cli.DurationFlag{Name: "ping-interval", Value: sd.PingInterval, Usage: "how often targets are pinged", EnvVars: env("PING_INTERVAL")},
		&cli.DurationFlag{Name: "park-after", Value: rd.ParkAfter, Usage: "how long a held poll that net/http serves (not a plain session request, which the relay serves and parks at once) waits before its connection is taken out of it (parked: far less memory per idle session); negative: at once", EnvVars: env("PARK_AFTER")},
		&cli.DurationFlag{Name: "max-ttl", Value: rd.MaxTTL, Usage: "longest a poll is held", EnvVars: env("MAX_TTL")},
		&cli.Int64Flag{Name: "max-message", Value: sd.MaxMessage, Usage: "largest message either way, bytes", EnvVars: env("MAX_MESSAGE")},
		&cli.Int64Flag{Name: "max-buffered", Value: sd.MaxBuffered, Usage: "bytes buffered per session before the relay stops reading the target (each message counts 72 bytes besides its payload)", EnvVars: env("MAX_BUFFERED")},
		&cli.Int64Flag{Name: "max-buffered-total", Value: sd.MaxBufferedTotal, Usage: "bytes all sessions together buffer both ways (counted as --max-buffered; client sends held for their turn or being assembled from fragments count too) before every session holding a message stops reading its target until its client takes it, and client sends that would be held are answered 503 (retried); 0: no bound", EnvVars: env("MAX_BUFFERED_TOTAL")},
		&cli.Int64Flag{Name: "max-body", Usage: "largest POST body, bytes (default: 3 × --max-message + 64 KiB)", EnvVars: env("MAX_BODY")},
		&cli.BoolFlag{Name: "forward-origin", Value: true, Usage: "pass the browser's Origin to the target", EnvVars: env("FORWARD_ORIGIN")},
		&cli.BoolFlag{Name: "forward-for", Value: true, Usage: "pass the browser's address to the target in X-Forwarded-For", EnvVars: env("FORWARD_FOR")},
		&cli.BoolFlag{Name: "allow-private", Usage: "let the relay dial private, loopback and other special-purpose addresses (see docs/SSRF.md)", EnvVars: env("ALLOW_PRIVATE")},
		&cli.StringSliceFlag{Name: "allow-cidr", Usage: "a special-purpose range the relay may dial anyway (repeatable), e.g. 10.1.2.0/24", EnvVars: env("ALLOW_CIDR")},
		&cli.IntFlag{Name: "gc-percent", Usage: "the Go GC's target heap growth over the live heap, percent (GOGC; 0: $GOGC if set, else 50); lower trades GC CPU for less memory per idle session", EnvVars: env("GC_PERCENT")},
		&cli.StringFlag{Name: "memory-limit", Usage: "soft memory limit of the Go runtime (GOMEMLIMIT), e.g. 512MiB or 2GiB; the GC works harder as the process nears it (empty: none)", EnvVars: env("MEMORY_LIMIT")},
		&cli.StringFlag{Name: "target-ca", Usage: "PEM file of extra CA certificates trusted for wss:// targets, besides the system roots", EnvVars: env("TARGET_CA")},
		&cli.DurationFlag{Name: "drain-timeout", Value: pd.DrainTimeout, Usage: "at SIGTERM, how long live sessions may go on before they are closed with 1001", EnvVars: env("DRAIN_TIMEOUT")},
		&cli.DurationFlag{Name: "close-grace", Value: pd.CloseGrace, Usage: "after the drain closed the sessions, how long clients have to collect their close message before the HTTP server stops", EnvVars: env("CLOSE_GRACE")},
	}
}

// routerFlags are a router's flags; their defaults are the router's
// (router.DefaultConfig) and the create limit's (process.DefaultSetup).
func routerFlags() []cli.Flag {
	d := process.DefaultSetup()
	return []cli.Flag{
		&cli.DurationFlag{Name: "establish-timeout", Value: d.Router.EstablishTimeout, Usage: "how long a relay may take to answer an establish request", EnvVars: env("ESTABLISH_TIMEOUT")},
		&cli.Float64Flag{Name: "create-rate", Value: d.CreateRate, Usage: "sessions per second one client address may create, sustained (0: no limit)", EnvVars: env("CREATE_RATE")},
		&cli.IntFlag{Name: "create-burst", Value: d.CreateBurst, Usage: "sessions one client address may create at once", EnvVars: env("CREATE_BURST")},
		&cli.StringSliceFlag{Name: "trusted-proxy", Usage: "CIDR of a reverse proxy whose X-Forwarded-For is believed (repeatable), e.g. 10.0.0.0/8", EnvVars: env("TRUSTED_PROXY")},
	}
}

func runBoth(c *cli.Context) error   { return runProcess(c, process.RoleBoth) }
func runRouter(c *cli.Context) error { return runProcess(c, process.RoleRouter) }

func runRelay(c *cli.Context) error {
	if c.String("fqdn") == "" {
		return fmt.Errorf("--fqdn is required: the relay's public host[:port]")
	}
	return runProcess(c, process.RoleRelay)
}

// runProcess builds the process role's flags describe and runs it
// until the command's context (SIGTERM, SIGINT) ends.
func runProcess(c *cli.Context, role process.Role) error {
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if role != process.RoleRouter {
		if err := process.TuneRuntime(c.Int("gc-percent"), c.String("memory-limit"), log); err != nil {
			return err
		}
	}
	s := processSetup(c, role, log)
	p, release, err := process.Build(s)
	if err != nil {
		return err
	}
	defer release()
	return p.Run(c.Context)
}

// processSetup turns a process command's flags into a process.Setup.
func processSetup(c *cli.Context, role process.Role, log *zap.Logger) process.Setup {
	s := process.DefaultSetup()
	s.Role, s.Log = role, log
	s.Listen, s.AdminListen, s.Redis = c.String("listen"), c.String("admin-listen"), c.String("redis")
	s.TLSCert, s.TLSKey = c.String("tls-cert"), c.String("tls-key")
	s.Server = process.ServerLimits{
		ReadHeaderTimeout: c.Duration("read-header-timeout"), ReadTimeout: c.Duration("read-timeout"),
		IdleTimeout: c.Duration("http-idle-timeout"), MaxHeaderBytes: c.Int("max-header-bytes"),
	}
	s.Metrics, s.ShutdownTimeout = c.Bool("metrics"), c.Duration("shutdown-timeout")
	if role != process.RoleRelay {
		s.Router.EstablishTimeout = c.Duration("establish-timeout")
		s.CreateRate, s.CreateBurst = c.Float64("create-rate"), c.Int("create-burst")
		s.TrustedProxy = c.StringSlice("trusted-proxy")
	}
	if role != process.RoleRouter {
		s.Relay = relayConfig(c)
		s.Guard = process.Guard{AllowPrivate: c.Bool("allow-private"), AllowCIDR: c.StringSlice("allow-cidr"), TargetCA: c.String("target-ca")}
		s.DrainTimeout, s.CloseGrace = c.Duration("drain-timeout"), c.Duration("close-grace")
	}
	if role == process.RoleBoth {
		s.Echo, s.DevAnyLoopback, s.DevToken = c.Bool("echo"), c.Bool("dev-any-loopback"), usesDevToken(c)
		s.Tokens = func(dev token.Token) (*token.Static, error) { return staticTokens(c, log, dev) }
	}
	return s
}

// relayConfig is the relay's configuration from its flags; the process
// adds its dialer and place.
func relayConfig(c *cli.Context) relay.Config {
	return relay.Config{
		ID:       c.String("id"),
		FQDN:     c.String("fqdn"),
		Capacity: c.Int("capacity"),
		MaxTTL:   c.Duration("max-ttl"),
		MaxBody:  c.Int64("max-body"),
		// Held polls leave their handler (httpconn.Park).
		ParkPolls: true,
		ParkAfter: c.Duration("park-after"),
		Session: session.Config{
			DialTimeout:      c.Duration("dial-timeout"),
			IdleTimeout:      c.Duration("idle-timeout"),
			PingInterval:     c.Duration("ping-interval"),
			MaxMessage:       c.Int64("max-message"),
			MaxBuffered:      c.Int64("max-buffered"),
			MaxBufferedTotal: c.Int64("max-buffered-total"),
			ForwardOrigin:    c.Bool("forward-origin"),
			ForwardFor:       c.Bool("forward-for"),
		},
	}
}
