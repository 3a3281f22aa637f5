// Package ratelimit limits how fast each client address may call an
// endpoint (the router's /create), with a token bucket per address
// (golang.org/x/time/rate; an IPv6 /64 counts as one address, loopback
// is not limited, see Key), and finds a request's client address behind
// trusted reverse proxies.
package ratelimit

import (
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/jsonp"
	"golang.org/x/time/rate"
)

// Config configures a Limiter. A zero field takes the default beside it.
type Config struct {
	// Rate is the sustained requests per second allowed per client
	// address; Burst how many may come at once. Rate must be positive.
	// Default Burst: 1.
	Rate  float64
	Burst int
	// MaxClients bounds the addresses remembered; when it is reached,
	// the least recently seen half is forgotten (they start with a full
	// bucket again, erring towards letting clients through). Default
	// 100,000.
	MaxClients int
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
}

// Limiter is a per-client token bucket. Its methods may be called
// concurrently. It runs no goroutine: idle buckets are swept inline.
type Limiter struct {
	cfg Config

	mu        sync.Mutex
	clients   map[string]*client
	lastSweep time.Time
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter for cfg.
func New(cfg Config) *Limiter {
	if cfg.Burst <= 0 {
		cfg.Burst = 1
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 100000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{cfg: cfg, clients: make(map[string]*client), lastSweep: cfg.Now()}
}

// Allow reports whether the client at addr may make a request now, and
// takes a token from its bucket (see Key) if so.
func (l *Limiter) Allow(addr string) bool {
	key, limited := Key(addr)
	if !limited {
		return true
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	c, ok := l.clients[key]
	if !ok {
		c = &client{lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)}
		l.clients[key] = c
	}
	c.seen = now
	return c.lim.AllowN(now, 1)
}

// Key is the bucket a client address counts against, and whether it is
// limited at all:
//   - an IPv6 address counts by its /64: that is what one subscriber or
//     host usually gets, so a client could otherwise take a fresh
//     address (and a fresh bucket) for every request;
//   - an IPv4 address (an IPv4-mapped one too) counts by itself;
//   - loopback is not limited: it is the machine itself (a developer, a
//     test suite against `polysocket both`). A proxy on loopback must be
//     named trusted, or its clients all look like loopback;
//   - anything that is not an IP address counts as written.
func Key(addr string) (key string, limited bool) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr, true
	}
	a = a.Unmap().WithZone("")
	switch {
	case a.IsLoopback():
		return "", false
	case a.Is6():
		return netip.PrefixFrom(a, 64).Masked().String(), true
	}
	return a.String(), true
}

// refill is how long an idle bucket takes to fill up: after that,
// forgetting it changes nothing.
func (l *Limiter) refill() time.Duration {
	return time.Duration(float64(l.cfg.Burst)/l.cfg.Rate*float64(time.Second)) + time.Second
}

// sweepLocked forgets full buckets about once a refill period, and the
// least recently seen half when MaxClients is reached.
func (l *Limiter) sweepLocked(now time.Time) {
	full := len(l.clients) >= l.cfg.MaxClients
	if !full && now.Sub(l.lastSweep) < l.refill() {
		return
	}
	l.lastSweep = now
	cut := now.Add(-l.refill())
	for k, c := range l.clients {
		if c.seen.Before(cut) {
			delete(l.clients, k)
		}
	}
	if len(l.clients) < l.cfg.MaxClients {
		return
	}
	// Still full: everyone is recent. Forget those older than the median
	// age, found by halving the window until enough go.
	for window := l.refill() / 2; len(l.clients) >= l.cfg.MaxClients/2 && window > 0; window /= 2 {
		cut := now.Add(-window)
		for k, c := range l.clients {
			if c.seen.Before(cut) {
				delete(l.clients, k)
			}
		}
	}
	if len(l.clients) >= l.cfg.MaxClients {
		clear(l.clients) // all seen this instant: start afresh
	}
}

// Len is the number of client addresses remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// retryAfter is a whole number of seconds until one token is back.
func (l *Limiter) retryAfter() string {
	s := int(1/l.cfg.Rate + 0.999)
	return strconv.Itoa(max(s, 1))
}

// Middleware refuses requests from a client address over its rate with
// the error word "limit": 429 for plain JSON, 200 with the error object
// for JSONP (so the callback runs, as for every /create error), with a
// Retry-After header. addr gives a request's client address; refused, if
// set, is called for each refusal (metrics).
func (l *Limiter) Middleware(next http.Handler, addr func(*http.Request) string, refused func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || l.Allow(addr(r)) {
			next.ServeHTTP(w, r)
			return
		}
		if refused != nil {
			refused()
		}
		p, _ := jsonp.Parse(r, 0)
		cb, ok := p.Callback()
		if !ok {
			jsonp.WriteBadCallback(w)
			return
		}
		w.Header().Set("Retry-After", l.retryAfter())
		jsonp.WriteError(w, cb, http.StatusOK, control.CodeLimit, "too many sessions created from your address; slow down and try again shortly")
	})
}
