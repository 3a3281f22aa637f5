// Package testenv builds polysocket stacks for tests: real WebSocket
// targets, a router and a relay on an in-process bus behind a real HTTP
// server on loopback, and a protocol client that speaks to them over HTTP
// as a browser would.
package testenv

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/httpconn"
	"github.com/polysocket/polysocket/membus"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/router"
	"github.com/polysocket/polysocket/session"
	"github.com/polysocket/polysocket/token"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Target is a WebSocket server for tests. By default it echoes every
// message; Handle replaces that.
type Target struct {
	*httptest.Server
	// URL is the ws:// URL of the server.
	URL string

	mu     sync.Mutex
	closes []websocket.CloseError // close frames received from the relay
	conns  []*websocket.Conn
	hdrs   []http.Header
	wg     sync.WaitGroup
}

// TargetOptions configure a Target.
type TargetOptions struct {
	// Subprotocols the target accepts.
	Subprotocols []string
	// Handle runs per connection instead of echoing; it must return when
	// the connection fails.
	Handle func(ctx context.Context, c *websocket.Conn)
	// ReadLimit of the target's connections; default 4 MiB.
	ReadLimit int64
}

// NewTarget starts a target on loopback, stopped at cleanup.
func NewTarget(t testing.TB, opts TargetOptions) *Target {
	t.Helper()
	tg := &Target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted before the handshake so cleanup's Wait cannot race it.
		tg.wg.Add(1)
		defer tg.wg.Done()
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       opts.Subprotocols,
			InsecureSkipVerify: true,
		})
		if err != nil {
			return
		}
		limit := opts.ReadLimit
		if limit == 0 {
			limit = 4 << 20
		}
		c.SetReadLimit(limit)
		tg.mu.Lock()
		tg.conns = append(tg.conns, c)
		tg.hdrs = append(tg.hdrs, r.Header.Clone())
		tg.mu.Unlock()
		ctx := r.Context()
		if opts.Handle != nil {
			opts.Handle(ctx, c)
		} else {
			Echo(ctx, c)
		}
		c.CloseNow()
	}))
	tg.URL = "ws" + strings.TrimPrefix(tg.Server.URL, "http")
	t.Cleanup(func() {
		tg.mu.Lock()
		for _, c := range tg.conns {
			c.CloseNow()
		}
		tg.mu.Unlock()
		tg.Server.Close()
		tg.wg.Wait()
	})
	return tg
}

// Echo echoes messages on c until it fails, recording a close frame in
// the error.
func Echo(ctx context.Context, c *websocket.Conn) {
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, data); err != nil {
			return
		}
	}
}

// Record notes a close error a handler saw, for CloseCodes.
func (tg *Target) Record(err error) {
	var ce websocket.CloseError
	if asClose(err, &ce) {
		tg.mu.Lock()
		tg.closes = append(tg.closes, ce)
		tg.mu.Unlock()
	}
}

// Closes returns the close frames recorded so far.
func (tg *Target) Closes() []websocket.CloseError {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]websocket.CloseError(nil), tg.closes...)
}

// Headers returns the handshake headers of every connection so far.
func (tg *Target) Headers() []http.Header {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]http.Header(nil), tg.hdrs...)
}

// Conns is the number of connections so far.
func (tg *Target) Conns() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.conns)
}

// RecordingEcho echoes and records the close frame that ends the
// connection.
func (tg *Target) RecordingEcho(ctx context.Context, c *websocket.Conn) {
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			tg.Record(err)
			return
		}
		if err := c.Write(ctx, typ, data); err != nil {
			return
		}
	}
}

// Stack is a router and a relay on one in-process bus behind one HTTP
// server, like `polysocket both`.
type Stack struct {
	*httptest.Server
	// Conns owns the server's connections (the fast loop and parking).
	Conns  *httpconn.Server
	Relay  *relay.Relay
	Router *router.Router
	Bus    *membus.Bus
	Log    *zap.Logger
}

// StackOptions configure a Stack. Zero values take the product defaults,
// except that loopback targets are allowed.
type StackOptions struct {
	// Mount, if set, adds handlers to the stack's mux (e.g. the client
	// library and the demo) before it starts.
	Mount   func(mux *http.ServeMux)
	Relay   relay.Config
	Router  router.Config
	Tokens  []token.Token // default: token.Dev()
	Session session.Config
	// NoPark keeps held polls in net/http (relay.Config.ParkPolls off).
	NoPark bool
	// NetHTTP serves every request with net/http, without the fast
	// loop (httpconn.Config.Accept nil); held polls still park.
	NetHTTP bool
	// HeaderTimeout and IdleTimeout are the server's ReadHeaderTimeout
	// (default 10s) and IdleTimeout (default none).
	HeaderTimeout, IdleTimeout time.Duration
	// Log is the router's and relay's logger; nil means the test's log,
	// warnings and up.
	Log *zap.Logger
}

// NewStack starts a stack on loopback; everything stops at cleanup.
func NewStack(t testing.TB, opts StackOptions) *Stack {
	t.Helper()
	log := opts.Log
	if log == nil {
		log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	bus := membus.New(0)
	toks := opts.Tokens
	if len(toks) == 0 {
		toks = []token.Token{token.Dev()}
	}
	st, err := token.NewStatic(toks...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	if opts.HeaderTimeout > 0 {
		srv.Config.ReadHeaderTimeout = opts.HeaderTimeout
	}
	srv.Config.IdleTimeout = opts.IdleTimeout
	rl, err := relay.New(stackRelayConfig(opts, srv.Listener.Addr().String()), bus, log)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(opts.Router, bus, st, log)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/create", rt)
	if opts.Mount != nil {
		opts.Mount(mux)
	}
	mux.Handle("/", rl.Handler())
	ccfg := httpconn.Config{HTTP: srv.Config, MaxBody: rl.MaxBody(), Log: log}
	if !opts.NetHTTP {
		// As in the product: session requests take the fast loop.
		ccfg.Accept, ccfg.WantBody = relay.Accept, rl.WantBody
	}
	conns, err := httpconn.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = conns.Listen(srv.Listener)
	srv.Start()
	s := &Stack{Server: srv, Conns: conns, Relay: rl, Router: rt, Bus: bus, Log: log}
	s.run(t)
	WaitFor(t, 5*time.Second, "the relay to register", func() bool {
		rs, _ := bus.Relays(context.Background())
		return len(rs) == 1 && bus.Serving(rl.ID())
	})
	return s
}

// stackRelayConfig is opts' relay configuration on the server at addr.
func stackRelayConfig(opts StackOptions, addr string) relay.Config {
	rcfg := opts.Relay
	if rcfg.FQDN == "" {
		rcfg.FQDN = addr
	} else {
		// "{port}" stands for the server's port, e.g. "localhost:{port}"
		// for browsers, which resolve *.localhost to loopback.
		_, port, _ := net.SplitHostPort(addr)
		rcfg.FQDN = strings.ReplaceAll(rcfg.FQDN, "{port}", port)
	}
	rcfg.Session = opts.Session
	// As in the product: held polls leave their handler.
	rcfg.ParkPolls = !opts.NoPark
	return rcfg
}

// run runs the relay until cleanup, which stops it, the connections
// and the server.
func (s *Stack) run(t testing.TB) {
	rl := s.Relay
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rl.Run(ctx)
	}()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = rl.Shutdown(sctx)
		_ = s.Conns.Shutdown(sctx)
		s.Server.Close()
		cancel()
		<-done
	})
}
