// Package faultproxy is a TCP proxy for tests that injects the faults of
// a bad network into the connections it forwards: latency and jitter,
// writes sliced into small pieces, a direction paused for a while, an
// answer reset part-way (the peer has started to answer, the client
// never sees it all) and a request cut off before it was fully sent.
//
// Each accepted connection gets its own Faults, drawn by Config.Plan from
// a random source seeded by Config.Seed and the connection's number, so
// a failing run's seed, logged by the test, replays the same plans (the
// timing of a run still varies).
//
// It is not github.com/Shopify/toxiproxy/v2: toxiproxy's toxics apply to
// every connection of a proxy alike, while a soak wants faults drawn per
// connection from one seed, and toxiproxy brings gorilla/mux, zerolog,
// tomb and an old prometheus client with it.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Kind names a fault, for the counts.
type Kind int

// The faults a connection may get.
const (
	Latency Kind = iota // every chunk waits Latency plus up to Jitter
	Slice               // every chunk is written in pieces of 1..SliceMax bytes
	Pause               // one direction stops for a while at a byte offset
	Reset               // both sides reset after ResetAfter bytes of the answer
	Cut                 // both sides closed after CutAfter bytes of the request
	numKinds
)

var kindNames = [numKinds]string{"latency", "slice", "pause", "reset", "cut"}

// String names the kind, as Counts does.
func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Stop is a pause of one direction: after At bytes went through, the
// next byte waits For.
type Stop struct {
	At  int64
	For time.Duration
}

// Faults are the faults of one connection; the zero value forwards
// untouched. "Up" is what the accepted side sends (a request), "down"
// what the upstream side answers.
type Faults struct {
	// Latency and Jitter delay every chunk read, both ways.
	Latency, Jitter time.Duration
	// SliceMax > 0 writes each chunk in pieces of 1..SliceMax bytes.
	SliceMax int
	// PauseUp and PauseDown pause a direction once (For 0: never).
	PauseUp, PauseDown Stop
	// ResetAfter > 0 resets both sides (TCP RST) once that many bytes
	// went down: an answer was started and is lost.
	ResetAfter int64
	// CutAfter > 0 closes both sides once that many bytes went up: a
	// request cut off before it was fully sent.
	CutAfter int64
}

// Config configures a Proxy.
type Config struct {
	// Upstream is the address every accepted connection is forwarded to.
	Upstream string
	// Plan draws the faults of each connection; nil forwards untouched.
	Plan func(r *rand.Rand) Faults
	// Seed seeds the random source of each connection, with its number.
	Seed uint64
	// DialTimeout bounds the dial of Upstream; zero means 5 s.
	DialTimeout time.Duration
}

// Proxy forwards the connections of a listener to an upstream address,
// injecting faults. Close stops it and waits for all its goroutines.
type Proxy struct {
	cfg    Config
	l      net.Listener
	ctx    context.Context // cancelled by Close: ends sleeps and copies
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  atomic.Uint64
	counts [numKinds]atomic.Int64

	mu   sync.Mutex
	live map[*link]struct{}
}

// New starts a proxy serving l, which it owns.
func New(l net.Listener, cfg Config) *Proxy {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{cfg: cfg, l: l, ctx: ctx, cancel: cancel, live: make(map[*link]struct{})}
	p.wg.Go(p.serve)
	return p
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Counts is how often each fault fired so far, by kind name; latency,
// slice and pause count connections that got them.
func (p *Proxy) Counts() map[string]int64 {
	m := make(map[string]int64, numKinds)
	for k := range numKinds {
		m[k.String()] = p.counts[k].Load()
	}
	return m
}

// Conns is the number of connections accepted so far.
func (p *Proxy) Conns() uint64 { return p.conns.Load() }

// ResetAll resets every live connection at once, both sides, as a
// network that drops them would.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.live {
		l.reset()
	}
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	err := p.l.Close()
	p.cancel()
	p.mu.Lock()
	for l := range p.live {
		l.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		n := p.conns.Add(1)
		var f Faults
		if p.cfg.Plan != nil {
			f = p.cfg.Plan(rand.New(rand.NewPCG(p.cfg.Seed, n)))
		}
		p.wg.Go(func() { p.handle(c, f, n) })
	}
}

// link is one proxied connection: the accepted side and the upstream.
type link struct {
	down, up net.Conn
	once     sync.Once
}

// close closes both sides once.
func (l *link) close() {
	l.once.Do(func() {
		l.down.Close()
		l.up.Close()
	})
}

// reset closes both sides with a TCP RST (linger 0).
func (l *link) reset() {
	for _, c := range []net.Conn{l.down, l.up} {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	l.close()
}

func (p *Proxy) handle(down net.Conn, f Faults, n uint64) {
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	up, err := d.DialContext(p.ctx, "tcp", p.cfg.Upstream)
	if err != nil {
		down.Close()
		return
	}
	l := &link{down: down, up: up}
	p.mu.Lock()
	if p.ctx.Err() != nil { // Close already swept the live links
		p.mu.Unlock()
		l.close()
		return
	}
	p.live[l] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.live, l)
		p.mu.Unlock()
		l.close()
	}()
	if f.Latency > 0 || f.Jitter > 0 {
		p.counts[Latency].Add(1)
	}
	if f.SliceMax > 0 {
		p.counts[Slice].Add(1)
	}
	var wg sync.WaitGroup
	// Each direction draws its jitter and slices from its own source.
	wg.Go(func() {
		p.pipe(l, pipeFaults{Faults: f, stop: f.PauseUp, endAfter: f.CutAfter, end: Cut}, up, down, rand.New(rand.NewPCG(p.cfg.Seed^1, n)))
	})
	wg.Go(func() {
		p.pipe(l, pipeFaults{Faults: f, stop: f.PauseDown, endAfter: f.ResetAfter, end: Reset}, down, up, rand.New(rand.NewPCG(p.cfg.Seed^2, n)))
	})
	wg.Wait()
}

// pipeFaults are the faults of one direction.
type pipeFaults struct {
	Faults
	stop     Stop
	endAfter int64 // > 0: end the link (as end says) after this many bytes
	end      Kind  // Cut or Reset
}

// pipe copies src to dst with the faults of one direction. At src's end
// it half-closes dst, so the other direction can finish; on an error, a
// cut or a reset it ends the whole link.
func (p *Proxy) pipe(l *link, f pipeFaults, dst, src net.Conn, r *rand.Rand) {
	d := &direction{p: p, l: l, f: f, dst: dst, r: r, paused: f.stop.For <= 0}
	buf := make([]byte, 32<<10)
	for {
		nr, err := src.Read(buf)
		if nr > 0 && !d.forward(buf[:nr]) {
			return
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
				return
			}
		}
		if err != nil {
			l.close()
			return
		}
	}
}

// direction is the state of one pipe.
type direction struct {
	p      *Proxy
	l      *link
	f      pipeFaults
	dst    net.Conn
	r      *rand.Rand
	sent   int64 // bytes written to dst
	paused bool  // the pause is behind us (or there is none)
}

// forward writes one chunk read with the faults due; false when the
// link has ended.
func (d *direction) forward(chunk []byte) bool {
	f := d.f
	if !d.p.sleep(f.Latency + jitter(d.r, f.Jitter)) {
		d.l.close()
		return false
	}
	// The pause comes first when its offset lies before the end's; while
	// it is ahead, sent <= its offset.
	if !d.paused && d.sent+int64(len(chunk)) > f.stop.At && (f.endAfter == 0 || f.stop.At < f.endAfter) {
		k := f.stop.At - d.sent
		if d.p.write(d.dst, chunk[:k], f.SliceMax, d.r) != nil {
			d.l.close()
			return false
		}
		d.sent += k
		chunk = chunk[k:]
		d.paused = true
		d.p.counts[Pause].Add(1)
		if !d.p.sleep(f.stop.For) {
			d.l.close()
			return false
		}
	}
	if f.endAfter > 0 && d.sent+int64(len(chunk)) >= f.endAfter {
		_ = d.p.write(d.dst, chunk[:f.endAfter-d.sent], f.SliceMax, d.r)
		d.p.counts[f.end].Add(1)
		if f.end == Reset {
			d.l.reset()
		} else {
			d.l.close()
		}
		return false
	}
	if d.p.write(d.dst, chunk, f.SliceMax, d.r) != nil {
		d.l.close()
		return false
	}
	d.sent += int64(len(chunk))
	return true
}

// write writes b to c whole, or in pieces of 1..sliceMax bytes.
func (p *Proxy) write(c net.Conn, b []byte, sliceMax int, r *rand.Rand) error {
	for len(b) > 0 {
		k := len(b)
		if sliceMax > 0 {
			k = min(k, 1+r.IntN(sliceMax))
		}
		if _, err := c.Write(b[:k]); err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

// sleep waits d, or until Close; it reports whether the proxy still runs.
func (p *Proxy) sleep(d time.Duration) bool {
	if d <= 0 {
		return p.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// jitter is a random duration in [0, j).
func jitter(r *rand.Rand, j time.Duration) time.Duration {
	if j <= 0 {
		return 0
	}
	return time.Duration(r.Int64N(int64(j)))
}
