package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// Registry holds the live sessions of a relay. Its methods may be called
// concurrently. Close ends every session and waits for their goroutines.
type Registry struct {
	cfg    Config
	log    *zap.Logger
	client *http.Client

	sessions sync.Map // socket id → *Session
	uniqs    sync.Map // subdomain label → struct{}
	live     atomic.Int64
	known    atomic.Int64 // sessions in the map: see Counts
	watch    watch
	// buffered is the memory all sessions' queues take, counted as
	// Config.MaxBuffered counts it (see Session.accountLocked), and what
	// they hold of their clients' sends (see inbound.go).
	buffered atomic.Int64
	// finisher is the one session that may pass MaxBufferedTotal to
	// finish a message it has begun (see Session.finishLocked).
	finisher atomic.Pointer[Session]

	mu     sync.Mutex // guards closed, and registering against Close
	closed bool
	g      group // every goroutine of every session
}

// OpenRequest describes the session to open.
type OpenRequest struct {
	// Target is the ws:// or wss:// URL to dial, already validated.
	Target string
	// Protocols are the subprotocols to request.
	Protocols []string
	// Origin and ClientAddr are the client's, passed on as configured.
	Origin, ClientAddr string
	// Token is the token the session counts against; kept for OnEnd.
	Token string
}

// New returns an empty registry.
func New(cfg Config, log *zap.Logger) (*Registry, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext
	}
	// Redirects are the client's business, the one handshake per
	// connection the transport's (see dial.go).
	transport := &handshakeTransport{dial: dial, tls: cfg.TLSClientConfig}
	return &Registry{
		cfg: cfg,
		log: log,
		client: &http.Client{
			Transport: transport,
			// A target that redirects is refused, never followed: the
			// redirect could point anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Config returns the registry's configuration with defaults filled in.
func (r *Registry) Config() Config { return r.cfg }

// Buffered is the memory the sessions' buffers take together, both ways:
// queued target messages, early client sends held for their turn and
// messages being assembled from fragments; payload (capacity) plus 72
// bytes a piece, as Config.MaxBufferedTotal counts it.
func (r *Registry) Buffered() int64 { return r.buffered.Load() }

// Len is the number of live (not yet ended) sessions.
func (r *Registry) Len() int { return int(r.live.Load()) }

// Get returns the session with socket id, or ErrUnknown.
func (r *Registry) Get(id string) (*Session, error) {
	v, ok := r.sessions.Load(id)
	if !ok {
		return nil, ErrUnknown
	}
	return v.(*Session), nil
}

// Range calls f for each session until f returns false.
func (r *Registry) Range(f func(*Session) bool) {
	r.sessions.Range(func(_, v any) bool { return f(v.(*Session)) })
}

// Open dials the target and, when the handshake succeeds, registers a new
// session. ctx bounds the dial (as does Config.DialTimeout). A failure to
// reach the target is a *DialError; a closed registry's answer is
// ErrRegistryClosed.
func (r *Registry) Open(ctx context.Context, req OpenRequest) (*Session, error) {
	if r.isClosed() {
		return nil, ErrRegistryClosed
	}
	conn, u, err := r.dial(ctx, req)
	if err != nil {
		return nil, err
	}
	s := newSession(r, conn, req)
	if u != nil {
		u.beforeRead = s.flushAnswer
		s.readHooked = true
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		conn.Close(websocket.StatusGoingAway, "relay shutting down")
		return nil, ErrRegistryClosed
	}
	for {
		s.Uniq = randomLabel()
		if _, taken := r.uniqs.LoadOrStore(s.Uniq, struct{}{}); !taken {
			break
		}
	}
	r.sessions.Store(s.ID, s)
	r.live.Add(1)
	r.known.Add(1)
	r.mu.Unlock()
	r.watch.notify()
	s.start()
	return s, nil
}

// dial opens the target's WebSocket; the upgraded connection beneath it
// is returned too when the handshake went through handshakeTransport.
func (r *Registry) dial(ctx context.Context, req OpenRequest) (*websocket.Conn, *upgradedConn, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	slot := &upgradedSlot{}
	ctx = context.WithValue(ctx, upgradedSlotKey{}, slot)
	h := http.Header{}
	if r.cfg.ForwardOrigin && req.Origin != "" {
		h.Set("Origin", req.Origin)
	}
	if r.cfg.ForwardFor && req.ClientAddr != "" {
		h.Set("X-Forwarded-For", req.ClientAddr)
	}
	conn, resp, err := websocket.Dial(ctx, req.Target, &websocket.DialOptions{
		HTTPClient:      r.client,
		HTTPHeader:      h,
		Subprotocols:    req.Protocols,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		kind := dialKind(err, resp, req.Protocols)
		if kind == DialRedirect {
			err = errors.New("target answered with a redirect (" + resp.Status + " to " + resp.Header.Get("Location") + "), which is not followed")
		}
		return nil, nil, &DialError{Err: err, Kind: kind}
	}
	conn.SetReadLimit(r.cfg.MaxMessage)
	return conn, slot.u, nil
}

// remove forgets an ended session: its id and subdomain become unknown.
func (r *Registry) remove(s *Session) {
	if _, ok := r.sessions.LoadAndDelete(s.ID); ok {
		r.uniqs.Delete(s.Uniq)
		r.known.Add(-1)
		r.watch.notify()
	}
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Close ends every session with code (the target gets it, and so does the
// client's next poll), refuses new ones, and waits until every session
// goroutine has exited or ctx is done.
func (r *Registry) Close(ctx context.Context, code int, reason string) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.EndAll(code, reason)
	if err := r.g.wait(ctx); err != nil {
		// Force the stragglers; their goroutines end once their
		// connections are gone.
		r.Range(func(s *Session) bool {
			s.conn.CloseNow()
			return true
		})
		_ = r.g.wait(context.Background())
		return err
	}
	return nil
}

// EndAll ends every live session like Close but keeps the registry open.
func (r *Registry) EndAll(code int, reason string) {
	r.Range(func(s *Session) bool {
		s.end(CauseShutdown, code, reason, websocket.StatusCode(code), reason, true)
		return true
	})
}

// Stop removes every session, ended or not, and stops its timers; used
// after Close so nothing outlives the registry (nor stays counted in
// Buffered).
func (r *Registry) Stop() {
	r.Range(func(s *Session) bool {
		s.removeNow()
		return true
	})
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

const labelAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomLabel is a 12-character DNS label; 36^12 makes collisions among
// live sessions rare, and Open retries the rare one.
func randomLabel() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		// 252 = 7*36: a tiny modulo bias is harmless for a label that is
		// not a credential.
		b[i] = labelAlphabet[int(b[i])%len(labelAlphabet)]
	}
	return string(b[:])
}
