package process

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/polysocket/polysocket/client"
	"github.com/polysocket/polysocket/metrics"
	"github.com/polysocket/polysocket/netguard"
	"github.com/polysocket/polysocket/ratelimit"
	"github.com/polysocket/polysocket/redisbus"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/router"
	"github.com/polysocket/polysocket/token"
	"go.uber.org/zap"
)

// Role is what a process runs.
type Role int

// The roles of the CLI's commands.
const (
	// RoleBoth is a router and a relay on one listener, on an
	// in-process bus unless Setup.Redis is set.
	RoleBoth Role = iota
	// RoleRouter is a router alone; relays are found through Redis.
	RoleRouter
	// RoleRelay is a relay alone, registered in Redis.
	RoleRelay
)

// Setup is what a command's flags say about a process; Build assembles
// the process from it. DefaultSetup holds the flags' defaults.
type Setup struct {
	Role Role
	// Listen is the public address; AdminListen the admin listener's
	// ("" or "off": none).
	Listen, AdminListen string
	// Redis is the bus's URL; "" (RoleBoth only): the in-process bus.
	Redis string
	// TLSCert and TLSKey are PEM files: HTTPS instead of HTTP.
	TLSCert, TLSKey string
	// Server bounds the public server's clients.
	Server ServerLimits
	// Relay configures the relay; Build sets its dialer and target TLS
	// from Guard. An empty FQDN in RoleBoth: localhost:{port}.
	Relay relay.Config
	// Guard says what the relay may dial.
	Guard Guard
	// Router configures the router; Build sets ClientAddr and OnCreate.
	Router router.Config
	// CreateRate is the /create requests per second one client address
	// may make (0: no limit), CreateBurst how many at once.
	CreateRate  float64
	CreateBurst int
	// TrustedProxy are CIDRs whose X-Forwarded-For is believed.
	TrustedProxy []string
	// Tokens builds the in-process bus's token store; dev is the
	// development token if DevToken, else zero. RoleBoth without Redis
	// only.
	Tokens func(dev token.Token) (*token.Static, error)
	// DevToken says the development token is in use; DevAnyLoopback
	// lets it reach any loopback port off a loopback listener (see
	// devToken).
	DevToken, DevAnyLoopback bool
	// Echo serves the demo page at / and an echo WebSocket at /echo
	// (RoleBoth).
	Echo bool
	// Metrics serves /metrics on the admin listener.
	Metrics bool
	// DrainTimeout, CloseGrace and ShutdownTimeout are Config's.
	DrainTimeout, CloseGrace, ShutdownTimeout time.Duration
	// Log is the process's logger. Required.
	Log *zap.Logger
}

// ServerLimits bound the public HTTP server's clients.
type ServerLimits struct {
	// ReadHeaderTimeout is the time a client has to send its request
	// line and headers, ReadTimeout a whole request, body included;
	// IdleTimeout is how long an idle keep-alive connection stays open.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 beyond).
	MaxHeaderBytes int
}

// Guard says what the relay may dial besides public addresses.
type Guard struct {
	// AllowPrivate lets it dial every special-purpose address.
	AllowPrivate bool
	// AllowCIDR are special-purpose ranges it may dial anyway.
	AllowCIDR []string
	// TargetCA is a PEM file of CAs trusted for wss:// targets besides
	// the system roots.
	TargetCA string
}

// DefaultSetup is the defaults of the flags that are not a package's
// Config: the server's limits, the drain, the create limit, metrics.
func DefaultSetup() Setup {
	return Setup{
		AdminListen: "127.0.0.1:9090",
		Server: ServerLimits{
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		},
		Relay:        defaultRelay(),
		Router:       router.DefaultConfig(),
		CreateRate:   10,
		CreateBurst:  50,
		Echo:         true,
		Metrics:      true,
		DrainTimeout: 30 * time.Second, CloseGrace: 2 * time.Second, ShutdownTimeout: 10 * time.Second,
	}
}

// defaultRelay is relay.DefaultConfig with the CLI's bound on what all
// sessions buffer (the package's zero is none).
func defaultRelay() relay.Config {
	c := relay.DefaultConfig()
	c.Session.MaxBufferedTotal = 256 << 20
	return c
}

// Build opens the listeners and the bus and assembles the process s
// describes. Run the process, then call release, which closes what Run
// does not (the bus, the built-in echo).
func Build(s Setup) (p *Process, release func(), err error) {
	ls, err := openListeners(s.Listen, s.AdminListen)
	if err != nil {
		return nil, nil, err
	}
	var rel releaser
	defer func() {
		if err != nil {
			rel.release()
			ls.close()
		}
	}()
	var parts parts
	switch s.Role {
	case RoleBoth:
		parts, err = buildBoth(s, ls, &rel)
	case RoleRouter:
		parts, err = buildRouter(s, &rel)
	default:
		parts, err = buildRelay(s, ls, &rel)
	}
	if err != nil {
		return nil, nil, err
	}
	p, err = newProcess(s, ls, parts)
	if err != nil {
		return nil, nil, err
	}
	return p, rel.release, nil
}

// releaser collects what Build opened, to close in reverse order.
type releaser []func()

func (r *releaser) add(f func()) { *r = append(*r, f) }

func (r releaser) release() {
	for i := len(r) - 1; i >= 0; i-- {
		r[i]()
	}
}

// parts are what a role built: the public mux, the relay (nil in a
// router), the metrics and the bus's readiness check.
type parts struct {
	mux   *http.ServeMux
	relay *relay.Relay
	m     *metrics.Metrics
	check func(context.Context) error
}

// buildRouter builds a router on Redis.
func buildRouter(s Setup, rel *releaser) (parts, error) {
	rb, err := openRedis(s)
	if err != nil {
		return parts{}, err
	}
	rel.add(rb.Close)
	pt := parts{mux: http.NewServeMux(), m: metrics.New(), check: redisCheck(rb)}
	return pt, mountRouter(s, pt, rb, rb)
}

// buildRelay builds a relay on Redis.
func buildRelay(s Setup, ls listeners, rel *releaser) (parts, error) {
	rb, err := openRedis(s)
	if err != nil {
		return parts{}, err
	}
	rel.add(rb.Close)
	pt := parts{mux: http.NewServeMux(), m: metrics.New(), check: redisCheck(rb)}
	pt.relay, err = newRelay(s, relayPlace{fqdn: s.Relay.FQDN, self: ls.selfAddrs()}, rb, pt.m)
	if err != nil {
		return parts{}, err
	}
	mountRelay(pt.mux, pt.relay)
	s.Log.Info("polysocket relay", zap.String("id", pt.relay.ID()), zap.String("fqdn", s.Relay.FQDN))
	return pt, nil
}

func openRedis(s Setup) (*redisbus.Bus, error) {
	return redisbus.New(redisbus.Config{URL: s.Redis}, s.Log.Named("redis"))
}

// redisCheck is the readiness check of a Redis bus: it answers a relay
// listing.
func redisCheck(rb *redisbus.Bus) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := rb.Relays(ctx)
		return err
	}
}

// newRelay builds a relay with its metrics wired in.
func newRelay(s Setup, place relayPlace, bus relay.Bus, m *metrics.Metrics) (*relay.Relay, error) {
	cfg, err := relayConfig(s, place)
	if err != nil {
		return nil, err
	}
	cfg.Metrics = m
	cfg.Session.Counters = m.SessionCounters()
	rl, err := relay.New(cfg, m.RelayBus(bus), s.Log)
	if err != nil {
		return nil, err
	}
	m.WatchRelay(rl.Registry())
	m.RelayLimits(cfg.Capacity, cfg.Session.MaxBufferedTotal)
	return rl, nil
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

// relayConfig is s.Relay at place, its dials through the address guard.
func relayConfig(s Setup, place relayPlace) (relay.Config, error) {
	allow := make([]netip.Prefix, 0, len(s.Guard.AllowCIDR))
	for _, c := range s.Guard.AllowCIDR {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return relay.Config{}, fmt.Errorf("--allow-cidr %q: %w", c, err)
		}
		allow = append(allow, p)
	}
	if place.loopback {
		allow = append(allow, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	}
	tlsConf, err := targetTLS(s.Guard.TargetCA)
	if err != nil {
		return relay.Config{}, err
	}
	guard := netguard.New(netguard.Config{
		AllowPrivate: s.Guard.AllowPrivate, Allow: allow,
		Self: place.self, SelfNames: []string{place.fqdn},
	})
	cfg := s.Relay
	cfg.FQDN = place.fqdn
	// Every TCP connection to a target, DNS answers and happy-eyeballs
	// fallbacks included, passes the guard; the relay itself is never
	// dialed.
	cfg.Session.DialContext = guard.DialFunc(cfg.Session.DialTimeout, place.echo)
	cfg.Session.TLSClientConfig = tlsConf
	return cfg, nil
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

// serverTLS loads the server's certificate; nil when neither file is
// given.
func serverTLS(cert, key string) (*tls.Config, error) {
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

// mountRouter builds the router on bus and tokens and mounts /create
// (behind the create limit) and the browser library (minified here,
// at startup) on pt.mux.
func mountRouter(s Setup, pt parts, bus router.Bus, tokens router.TokenStore) error {
	trusted, err := ratelimit.ParsePrefixes(s.TrustedProxy)
	if err != nil {
		return fmt.Errorf("--trusted-proxy: %w", err)
	}
	cfg := s.Router
	cfg.ClientAddr = warnUntrustedProxy(trusted, s.Log)
	cfg.OnCreate = pt.m.OnCreate
	rt, err := router.New(cfg, pt.m.RouterBus(bus), pt.m.TokenStore(tokens), s.Log)
	if err != nil {
		return err
	}
	var h http.Handler = rt
	if s.CreateRate > 0 {
		l := ratelimit.New(ratelimit.Config{Rate: s.CreateRate, Burst: s.CreateBurst})
		h = l.Middleware(h, cfg.ClientAddr, func() { pt.m.LimitRefused(metrics.LimitRate) })
	}
	pt.mux.Handle("/create", h)
	lib, err := client.New()
	if err != nil {
		return err
	}
	lib.Mount(pt.mux)
	return nil
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

func mountRelay(mux *http.ServeMux, rl *relay.Relay) {
	for _, p := range relay.Patterns() {
		mux.Handle(p, rl.Handler())
	}
}

// newProcess builds the process from what a role built: pt.mux serves
// the public endpoints, pt.relay (nil in a router) its sessions.
// Metrics and profiles go on the admin listener.
func newProcess(s Setup, ls listeners, pt parts) (*Process, error) {
	tlsConf, err := serverTLS(s.TLSCert, s.TLSKey)
	if err != nil {
		return nil, err
	}
	var maxTTL time.Duration
	cfg := Config{
		Listener: ls.public, TLS: tlsConf, Relay: pt.relay, Metrics: pt.m,
		Admin: ls.admin, AdminMetrics: s.Metrics,
		BusCheck: pt.check, ShutdownTimeout: s.ShutdownTimeout, Log: s.Log,
	}
	if pt.relay != nil {
		maxTTL = s.Relay.MaxTTL
		cfg.DrainTimeout = s.DrainTimeout
		cfg.CloseGrace = s.CloseGrace
	}
	// The write timeout leaves room for the longest poll.
	cfg.HTTP = &http.Server{
		Handler:           pt.mux,
		ReadHeaderTimeout: s.Server.ReadHeaderTimeout,
		ReadTimeout:       s.Server.ReadTimeout,
		WriteTimeout:      maxTTL + 30*time.Second,
		IdleTimeout:       s.Server.IdleTimeout,
		MaxHeaderBytes:    s.Server.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(s.Log.Named("http")),
	}
	return New(cfg)
}

// portOf is the port of a TCP listener.
func portOf(ln net.Listener) string { return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) }
