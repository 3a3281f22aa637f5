package httpconn

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Config configures a Server.
type Config struct {
	// HTTP is the net/http server of every connection the fast loop does
	// not keep; its Handler also serves the requests the fast loop takes,
	// so both count and route alike, and its ReadHeaderTimeout,
	// ReadTimeout, IdleTimeout (default: ReadTimeout, as net/http does)
	// and MaxHeaderBytes bound the fast loop too. New sets its
	// BaseContext, so that Park finds the Server. Required.
	HTTP *http.Server
	// Accept says which request paths the fast loop takes. nil: none;
	// every connection goes to net/http.
	Accept func(path []byte) bool
	// MaxBody is the largest request body the fast loop reads; a request
	// announcing more goes to net/http. Default 1 MiB.
	MaxBody int64
	// WantBody, if set, is asked before a body is read whether it is
	// worth a byte (path and Host of the request); when it says no the
	// handler gets the request without its body (ContentLength 0) and
	// the connection closes after the answer, the body unread. Nil:
	// every body is read.
	WantBody func(path, host string) bool
	// Log gets handler panics and accept errors. Default: none.
	Log *zap.Logger
}

// Server runs the fast loop of one listener beside an http.Server.
type Server struct {
	cfg      Config
	log      *zap.Logger
	handler  http.Handler
	fallback *handback // connections for net/http

	// The fast loop's limits, from cfg.HTTP.
	readHeaderTimeout, readTimeout, idleTimeout time.Duration
	maxHeaderBytes                              int

	ln      net.Listener
	closeLn sync.Once
	done    chan struct{} // closed with the listener

	// closing is set under mu, so that track never registers a loop once
	// Shutdown waits; loops read it without the lock, per request.
	mu      sync.Mutex
	closing atomic.Bool
	conns   map[*fastConn]struct{}
	wg      sync.WaitGroup // the accept loop and every connection's loop
}

// serverKey is the context key under which net/http's requests carry
// their Server (see Park).
type serverKey struct{}

// New checks cfg and returns a Server; it starts nothing.
func New(cfg Config) (*Server, error) {
	if cfg.HTTP == nil || cfg.HTTP.Handler == nil {
		return nil, errors.New("httpconn: Config.HTTP with a Handler is required")
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	s := &Server{
		cfg:               cfg,
		log:               cfg.Log,
		handler:           cfg.HTTP.Handler,
		fallback:          newHandback(),
		readHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		readTimeout:       cfg.HTTP.ReadTimeout,
		idleTimeout:       cfg.HTTP.IdleTimeout,
		maxHeaderBytes:    cfg.HTTP.MaxHeaderBytes,
		done:              make(chan struct{}),
		conns:             make(map[*fastConn]struct{}),
	}
	if s.idleTimeout == 0 {
		s.idleTimeout = s.readTimeout
	}
	base := cfg.HTTP.BaseContext
	cfg.HTTP.BaseContext = func(l net.Listener) context.Context {
		ctx := context.Background()
		if base != nil {
			ctx = base(l)
		}
		return context.WithValue(ctx, serverKey{}, s)
	}
	return s, nil
}

// Listen starts the fast loop on ln and returns the listener of the
// connections it gives to net/http: serve that with Config.HTTP.
// Closing the returned listener closes ln. Listen may be called once.
func (s *Server) Listen(ln net.Listener) net.Listener {
	s.ln = ln
	s.fallback.addr = ln.Addr()
	s.wg.Add(1)
	go s.acceptLoop()
	return &fallbackListener{handback: s.fallback, s: s}
}

// Serve serves ln: the fast loop and Config.HTTP. It returns when
// Shutdown or Close is called (http.ErrServerClosed) or the listener
// fails.
func (s *Server) Serve(ln net.Listener) error {
	return s.cfg.HTTP.Serve(s.Listen(ln))
}

// fallbackListener is the listener Listen returns.
type fallbackListener struct {
	*handback
	s *Server
}

// Close stops accepting: ln is closed, and so is this listener.
func (l *fallbackListener) Close() error {
	l.s.closeListener()
	return nil
}

func (s *Server) closeListener() {
	s.closeLn.Do(func() {
		close(s.done)
		if s.ln != nil {
			_ = s.ln.Close()
		}
		_ = s.fallback.Close()
	})
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				s.closeListener()
				return
			}
			// Out of descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept", zap.Error(err), zap.Duration("retry_in", delay))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		s.goServe(c, true)
	}
}

// fastConn is a connection in the fast loop.
type fastConn struct {
	c    net.Conn
	idle atomic.Bool // waiting for a request: Shutdown may close it
}

// track registers a connection's loop; false once Shutdown has begun.
func (s *Server) track(fc *fastConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[fc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(fc *fastConn) {
	s.mu.Lock()
	delete(s.conns, fc)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) isClosing() bool { return s.closing.Load() }

// goServe serves c in a goroutine tracked for Shutdown (fresh: c is new
// from the listener), or closes it once Shutdown has begun.
func (s *Server) goServe(c net.Conn, fresh bool) {
	fc := &fastConn{c: c}
	if !s.track(fc) {
		_ = c.Close()
		return
	}
	go func() {
		defer s.untrack(fc)
		s.serve(fc, fresh)
	}()
}

// Shutdown stops accepting, shuts Config.HTTP down, closes the fast
// loop's idle connections, lets the others finish the request in hand,
// and closes what is left when ctx ends. Connections answered after it
// began (Parked.Respond) are closed after their answer.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for fc := range s.conns {
		if fc.idle.Load() {
			_ = fc.c.Close()
		}
	}
	s.mu.Unlock()
	// net/http first, so that its Serve returns ErrServerClosed: it
	// closes the listener it serves, and so ln.
	herr := s.cfg.HTTP.Shutdown(ctx)
	s.closeListener()
	waited := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return herr
	case <-ctx.Done():
	}
	_ = s.cfg.HTTP.Close()
	s.mu.Lock()
	for fc := range s.conns {
		_ = fc.c.Close()
	}
	s.mu.Unlock()
	<-waited // every loop ends once its connection is closed
	return ctx.Err()
}

// serveTLS handshakes a fresh TLS connection; HTTP/2 goes to net/http.
// It reports whether the fast loop goes on with c.
func (s *Server) serveTLS(tc *tls.Conn) bool {
	if d := s.readHeaderTimeout; d > 0 {
		_ = tc.SetDeadline(time.Now().Add(d))
	}
	if err := tc.Handshake(); err != nil {
		_ = tc.Close()
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		s.fallback.give(tc)
		return false
	}
	return true
}

// handback is an in-process net.Listener fed with the connections that
// net/http serves.
type handback struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	addr      net.Addr
}

func newHandback() *handback {
	return &handback{
		ch:   make(chan net.Conn),
		done: make(chan struct{}),
		addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)},
	}
}

// Accept returns the next handed-over connection.
func (l *handback) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections handed over later are closed.
func (l *handback) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr is the fast loop's listener's address.
func (l *handback) Addr() net.Addr { return l.addr }

// give hands c to net/http, or closes it once the listener is closed.
func (l *handback) give(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// prefixConn is a connection with bytes already read from it.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
