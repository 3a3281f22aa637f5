package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/polysocket/polysocket/metrics"
	"github.com/polysocket/polysocket/netguard"
	"github.com/polysocket/polysocket/process"
	"github.com/polysocket/polysocket/ratelimit"
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
		&cli.DurationFlag{Name: "read-header-timeout", Value: 10 * time.Second, Usage: "time a client has to send its request line and headers (cuts off slowloris clients)", EnvVars: env("READ_HEADER_TIMEOUT")},
		&cli.DurationFlag{Name: "read-timeout", Value: 30 * time.Second, Usage: "time a client has to send a whole request, body included", EnvVars: env("READ_TIMEOUT")},
		&cli.DurationFlag{Name: "http-idle-timeout", Value: 120 * time.Second, Usage: "how long an idle keep-alive connection stays open", EnvVars: env("HTTP_IDLE_TIMEOUT")},
		&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (chain) file: serve HTTPS instead of HTTP (with --tls-key; a relay needs a wildcard certificate for *.fqdn too)", EnvVars: env("TLS_CERT")},
		&cli.StringFlag{Name: "tls-key", Usage: "PEM private key file of --tls-cert", EnvVars: env("TLS_KEY")},
		&cli.StringFlag{Name: "admin-listen", Value: "127.0.0.1:9090", Usage: "address of the admin listener, which serves /metrics and /debug/pprof/ (never the public one; keep it off the internet); empty or \"off\": none", EnvVars: env("ADMIN_LISTEN")},
		&cli.BoolFlag{Name: "metrics", Value: true, Usage: "serve Prometheus metrics at /metrics on --admin-listen", EnvVars: env("METRICS")},
	)
}

// relayFlags are a relay's flags; their defaults are the relay's and
// the sessions' own (relay.DefaultConfig).
func relayFlags() []cli.Flag {
	rd := relay.DefaultConfig()
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
		&cli.Int64Flag{Name: "max-buffered-total", Value: 256 << 20, Usage: "bytes all sessions together buffer both ways (counted as --max-buffered; client sends held for their turn or being assembled from fragments count too) before every session holding a message stops reading its target until its client takes it, and client sends that would be held are answered 503 (retried); 0: no bound", EnvVars: env("MAX_BUFFERED_TOTAL")},
		&cli.Int64Flag{Name: "max-body", Usage: "largest POST body, bytes (default: 3 × --max-message + 64 KiB)", EnvVars: env("MAX_BODY")},
		&cli.BoolFlag{Name: "forward-origin", Value: true, Usage: "pass the browser's Origin to the target", EnvVars: env("FORWARD_ORIGIN")},
		&cli.BoolFlag{Name: "forward-for", Value: true, Usage: "pass the browser's address to the target in X-Forwarded-For", EnvVars: env("FORWARD_FOR")},
		&cli.BoolFlag{Name: "allow-private", Usage: "let the relay dial private, loopback and other special-purpose addresses (see docs/SSRF.md)", EnvVars: env("ALLOW_PRIVATE")},
		&cli.StringSliceFlag{Name: "allow-cidr", Usage: "a special-purpose range the relay may dial anyway (repeatable), e.g. 10.1.2.0/24", EnvVars: env("ALLOW_CIDR")},
		&cli.IntFlag{Name: "gc-percent", Usage: "the Go GC's target heap growth over the live heap, percent (GOGC; 0: $GOGC if set, else 50); lower trades GC CPU for less memory per idle session", EnvVars: env("GC_PERCENT")},
		&cli.StringFlag{Name: "memory-limit", Usage: "soft memory limit of the Go runtime (GOMEMLIMIT), e.g. 512MiB or 2GiB; the GC works harder as the process nears it (empty: none)", EnvVars: env("MEMORY_LIMIT")},
		&cli.StringFlag{Name: "target-ca", Usage: "PEM file of extra CA certificates trusted for wss:// targets, besides the system roots", EnvVars: env("TARGET_CA")},
		&cli.DurationFlag{Name: "drain-timeout", Value: 30 * time.Second, Usage: "at SIGTERM, how long live sessions may go on before they are closed with 1001", EnvVars: env("DRAIN_TIMEOUT")},
		&cli.DurationFlag{Name: "close-grace", Value: 2 * time.Second, Usage: "after the drain closed the sessions, how long clients have to collect their close message before the HTTP server stops", EnvVars: env("CLOSE_GRACE")},
	}
}

func routerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "establish-timeout", Value: router.DefaultConfig().EstablishTimeout, Usage: "how long a relay may take to answer an establish request", EnvVars: env("ESTABLISH_TIMEOUT")},
		&cli.Float64Flag{Name: "create-rate", Value: 10, Usage: "sessions per second one client address may create, sustained (0: no limit)", EnvVars: env("CREATE_RATE")},
		&cli.IntFlag{Name: "create-burst", Value: 50, Usage: "sessions one client address may create at once", EnvVars: env("CREATE_BURST")},
		&cli.StringSliceFlag{Name: "trusted-proxy", Usage: "CIDR of a reverse proxy whose X-Forwarded-For is believed (repeatable), e.g. 10.0.0.0/8", EnvVars: env("TRUSTED_PROXY")},
	}
}

// defaultGCPercent is a relay's GOGC unless --gc-percent or $GOGC says
// otherwise.
const defaultGCPercent = 50

// tuneRuntime applies --gc-percent and --memory-limit. A relay's heap is
// mostly long-lived per-session state, and the runtime keeps up to
// (1+GOGC/100) times the live heap resident, so GOGC is the main lever
// on RSS per idle session; it costs GC CPU in proportion to the
// allocation rate, which an idle relay hardly has.
//
// Without --gc-percent or $GOGC a relay runs at defaultGCPercent: at
// 5,000 idle sessions that took RSS from 34 to 27 KiB a session, and
// echo at C = 100 moved as many messages as at Go's 100 (docs/BENCHMARKS.md).
func tuneRuntime(c *cli.Context, log *zap.Logger) error {
	p := c.Int("gc-percent")
	if p < 0 {
		return fmt.Errorf("--gc-percent %d: must be positive", p)
	}
	if p == 0 && os.Getenv("GOGC") == "" {
		p = defaultGCPercent
	}
	if p != 0 {
		debug.SetGCPercent(p)
		log.Debug("GC percent set", zap.Int("percent", p))
	}
	if v := c.String("memory-limit"); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			return fmt.Errorf("--memory-limit: %w", err)
		}
		debug.SetMemoryLimit(n)
		log.Info("memory limit set", zap.Int64("bytes", n))
	}
	return nil
}

// parseBytes reads a byte count with an optional binary unit, as
// GOMEMLIMIT does: 1073741824, 512MiB, 2GiB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a positive byte count like 512MiB", s)
	}
	return n * mult, nil
}

// relayPlace is what a relay knows of its own place on the network.
type relayPlace struct {
	// fqdn is the relay's public host[:port].
	fqdn string
	// self are the addresses the process serves on (public and admin).
	self []netip.AddrPort
	// loopback lets the relay dial loopback targets: the dev token of
	// `both` on a loopback listener, or with --dev-any-loopback.
	loopback bool
	// echo reaches the built-in echo target; a target naming the relay
	// itself goes there (netguard.Guard.DialFunc). Nil: such a target is
	// refused.
	echo func(ctx context.Context) (net.Conn, error)
}

// relayConfig builds the relay's configuration from its flags.
func relayConfig(c *cli.Context, place relayPlace) (relay.Config, error) {
	allow := make([]netip.Prefix, 0, len(c.StringSlice("allow-cidr")))
	for _, s := range c.StringSlice("allow-cidr") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return relay.Config{}, fmt.Errorf("--allow-cidr %q: %w", s, err)
		}
		allow = append(allow, p)
	}
	if place.loopback {
		allow = append(allow, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	}
	tlsConf, err := targetTLS(c.String("target-ca"))
	if err != nil {
		return relay.Config{}, err
	}
	guard := netguard.New(netguard.Config{
		AllowPrivate: c.Bool("allow-private"), Allow: allow,
		Self: place.self, SelfNames: []string{place.fqdn},
	})
	return relay.Config{
		ID:       c.String("id"),
		FQDN:     place.fqdn,
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
			// Every TCP connection to a target, DNS answers and
			// happy-eyeballs fallbacks included, passes the guard; the
			// relay itself is never dialed.
			DialContext:     guard.DialFunc(c.Duration("dial-timeout"), place.echo),
			TLSClientConfig: tlsConf,
		},
	}, nil
}

// targetTLS is the TLS client configuration for wss:// targets: the
// system roots, plus the CAs in caFile if given. Nil means the system
// roots alone.
func targetTLS(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--target-ca: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--target-ca %s: no PEM certificate found", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// serverTLS loads --tls-cert and --tls-key; nil when neither is given.
func serverTLS(c *cli.Context) (*tls.Config, error) {
	cert, key := c.String("tls-cert"), c.String("tls-key")
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("loading --tls-cert/--tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// routerConfig builds the router's configuration from its flags; the
// client address honours X-Forwarded-For from --trusted-proxy only.
func routerConfig(c *cli.Context, m *metrics.Metrics, log *zap.Logger) (router.Config, error) {
	trusted, err := ratelimit.ParsePrefixes(c.StringSlice("trusted-proxy"))
	if err != nil {
		return router.Config{}, fmt.Errorf("--trusted-proxy: %w", err)
	}
	return router.Config{
		EstablishTimeout: c.Duration("establish-timeout"),
		ClientAddr:       warnUntrustedProxy(trusted, log),
		OnCreate:         m.OnCreate,
	}, nil
}

// warnUntrustedProxy is ratelimit.ClientAddr that also logs, once, a
// request carrying X-Forwarded-For from a peer not in trusted: most
// likely a load balancer that --trusted-proxy should name, without which
// its users share one create limit (docs/DEPLOY.md).
func warnUntrustedProxy(trusted []netip.Prefix, log *zap.Logger) func(*http.Request) string {
	addr := ratelimit.ClientAddr(trusted)
	check := ratelimit.WarnUntrusted(trusted, func(peer string) {
		log.Warn("a /create request carries X-Forwarded-For from a peer that is not a trusted proxy: the header is ignored, so "+
			"every client behind that proxy counts as the proxy for the per-address create limit; if it is your load balancer, "+
			"name it with --trusted-proxy (docs/DEPLOY.md). Logged once.", zap.String("peer", peer))
	})
	return func(r *http.Request) string {
		check(r)
		return addr(r)
	}
}

// createLimit wraps /create in the per-client-address rate limit, when
// --create-rate is set.
func createLimit(c *cli.Context, h http.Handler, cfg router.Config, m *metrics.Metrics) http.Handler {
	if c.Float64("create-rate") <= 0 {
		return h
	}
	l := ratelimit.New(ratelimit.Config{Rate: c.Float64("create-rate"), Burst: c.Int("create-burst")})
	return l.Middleware(h, cfg.ClientAddr, func() { m.LimitRefused(metrics.LimitRate) })
}

// listeners are a process's sockets: the public one, and the admin one
// (nil with --admin-listen off).
type listeners struct {
	public, admin net.Listener
}

// openListeners opens --listen and --admin-listen.
func openListeners(c *cli.Context) (listeners, error) {
	var ls listeners
	var err error
	if ls.public, err = net.Listen("tcp", c.String("listen")); err != nil {
		return ls, err
	}
	if ls.admin, err = listenAdmin(c.String("admin-listen")); err != nil {
		ls.public.Close()
		return listeners{}, err
	}
	return ls, nil
}

// listenAdmin opens the admin listener; none for "" or "off".
func listenAdmin(addr string) (net.Listener, error) {
	if addr == "" || addr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// The usual cause: another polysocket on this machine has the
		// default 127.0.0.1:9090.
		return nil, fmt.Errorf("--admin-listen %s: %w (give each process on a machine its own --admin-listen, or off)", addr, err)
	}
	return ln, nil
}

// close closes the listeners (those run has not taken over).
func (ls listeners) close() {
	ls.public.Close()
	if ls.admin != nil {
		ls.admin.Close()
	}
}

// selfAddrs are the addresses the process serves on, which its relay
// must never dial.
func (ls listeners) selfAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, ln := range []net.Listener{ls.public, ls.admin} {
		if ln == nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
			out = append(out, ap)
		}
	}
	return out
}

// newServer is an http.Server with timeouts against slow clients; the
// write timeout leaves room for the longest poll.
func newServer(c *cli.Context, h http.Handler, log *zap.Logger, maxTTL time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.Duration("read-header-timeout"),
		ReadTimeout:       c.Duration("read-timeout"),
		WriteTimeout:      maxTTL + 30*time.Second,
		IdleTimeout:       c.Duration("http-idle-timeout"),
		MaxHeaderBytes:    c.Int("max-header-bytes"),
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}

// newProcess builds the process: mux serves the public endpoints, rl
// (nil in a router) its sessions; busCheck is /readyz's. Metrics and
// profiles go on the admin listener.
func newProcess(c *cli.Context, log *zap.Logger, ls listeners, mux *http.ServeMux, rl *relay.Relay, m *metrics.Metrics, busCheck func(context.Context) error) (*process.Process, error) {
	tlsConf, err := serverTLS(c)
	if err != nil {
		return nil, err
	}
	var maxTTL time.Duration
	cfg := process.Config{
		Listener: ls.public, TLS: tlsConf, Relay: rl, Metrics: m,
		Admin: ls.admin, AdminMetrics: c.Bool("metrics"),
		BusCheck: busCheck, ShutdownTimeout: c.Duration("shutdown-timeout"), Log: log,
	}
	if rl != nil {
		maxTTL = c.Duration("max-ttl")
		cfg.DrainTimeout = c.Duration("drain-timeout")
		cfg.CloseGrace = c.Duration("close-grace")
	}
	cfg.HTTP = newServer(c, mux, log, maxTTL)
	return process.New(cfg)
}
