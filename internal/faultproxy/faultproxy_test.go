package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ioTimeout bounds every read and write of the tests.
const ioTimeout = 10 * time.Second

// upstream is a TCP server that hands each connection's bytes to the
// test: it records what arrived until EOF and echoes it.
type upstream struct {
	l    net.Listener
	echo bool
	wg   sync.WaitGroup
	got  chan []byte // what one connection received, at its end
}

func newUpstream(t *testing.T) *upstream { return newUpstreamEcho(t, true) }

// newUpstreamEcho is newUpstream that may only read: a proxy closing a
// socket with unread data resets it, which can drop what the upstream
// had not read yet.
func newUpstreamEcho(t *testing.T, echo bool) *upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{l: l, echo: echo, got: make(chan []byte, 16)}
	u.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.wg.Go(func() { u.serve(c) })
		}
	})
	t.Cleanup(func() { l.Close(); u.wg.Wait() })
	return u
}

// serve echoes what c sends and reports all of it at c's end.
func (u *upstream) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	var all bytes.Buffer
	var w io.Writer = &all
	if u.echo {
		w = io.MultiWriter(c, &all)
	}
	_, _ = io.Copy(w, c)
	u.got <- all.Bytes()
}

// start runs a proxy to u with faults f on every connection.
func start(t *testing.T, u *upstream, f Faults) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := New(l, Config{Upstream: u.l.Addr().String(), Plan: func(*rand.Rand) Faults { return f }, Seed: 1})
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return c.(*net.TCPConn)
}

// payload is n bytes that are not all alike.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// roundTrip sends msg, half-closes, and returns the echo read to EOF.
func roundTrip(t *testing.T, c *net.TCPConn, msg []byte) ([]byte, error) {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	if err := c.CloseWrite(); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

func TestForwardsIntact(t *testing.T) {
	for name, f := range map[string]Faults{
		"none":    {},
		"latency": {Latency: time.Millisecond, Jitter: 2 * time.Millisecond},
		"slice":   {SliceMax: 3},
		"pause":   {PauseUp: Stop{At: 100, For: 50 * time.Millisecond}, PauseDown: Stop{At: 5000, For: 50 * time.Millisecond}},
	} {
		t.Run(name, func(t *testing.T) {
			u := newUpstream(t)
			p := start(t, u, f)
			msg := payload(100_000)
			got, err := roundTrip(t, dial(t, p), msg)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo: %d bytes, %v; want the %d sent", len(got), err, len(msg))
			}
			if up := <-u.got; !bytes.Equal(up, msg) {
				t.Fatalf("upstream got %d bytes, want the %d sent", len(up), len(msg))
			}
		})
	}
}

// A pause holds the direction back at least its length: the bytes
// after its offset arrive no sooner.
func TestPauseHolds(t *testing.T) {
	u := newUpstream(t)
	const hold = 300 * time.Millisecond
	p := start(t, u, Faults{PauseDown: Stop{At: 10, For: hold}})
	c := dial(t, p)
	begin := time.Now()
	got, err := roundTrip(t, c, payload(20))
	if err != nil || len(got) != 20 {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	if d := time.Since(begin); d < hold {
		t.Fatalf("answer after %v, want at least the pause %v", d, hold)
	}
	if n := p.Counts()["pause"]; n != 1 {
		t.Fatalf("pause count %d, want 1", n)
	}
	<-u.got
}

// Reset: the client gets exactly ResetAfter bytes of the answer, then
// a connection reset.
func TestResetAfter(t *testing.T) {
	u := newUpstream(t)
	p := start(t, u, Faults{ResetAfter: 1000})
	c := dial(t, p)
	if _, err := c.Write(payload(5000)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %d bytes, %v; want a connection reset", len(got), err)
	}
	if len(got) != 1000 || !bytes.Equal(got, payload(1000)) {
		t.Fatalf("got %d bytes before the reset, want the first 1000", len(got))
	}
	<-u.got
	if n := p.Counts()["reset"]; n != 1 {
		t.Fatalf("reset count %d, want 1", n)
	}
}

// Cut: the upstream gets exactly CutAfter bytes of the request, then
// its end; the client's connection is closed.
func TestCutAfter(t *testing.T) {
	u := newUpstreamEcho(t, false)
	p := start(t, u, Faults{CutAfter: 700, SliceMax: 50})
	c := dial(t, p)
	_, _ = c.Write(payload(5000))
	if up := <-u.got; !bytes.Equal(up, payload(700)) {
		t.Fatalf("upstream got %d bytes, want the first 700", len(up))
	}
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read: %v, want its end", err)
	}
	if n := p.Counts()["cut"]; n != 1 {
		t.Fatalf("cut count %d, want 1", n)
	}
}

// ResetAll drops every live connection; Close then returns at once.
func TestResetAll(t *testing.T) {
	u := newUpstream(t)
	p := start(t, u, Faults{})
	c := dial(t, p)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	p.ResetAll()
	if _, err := c.Read(b); err == nil {
		t.Fatal("read after ResetAll succeeded")
	}
	<-u.got
}

// Close ends connections held in a long pause, and waits for them.
func TestCloseEndsPauses(t *testing.T) {
	u := newUpstream(t)
	p := start(t, u, Faults{PauseUp: Stop{At: 0, For: time.Hour}})
	c := dial(t, p)
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after Close: %v", err)
	}
	<-u.got
}

// The plans are a function of the seed and the connection's number:
// the same seed replays them, and they stay within their bounds.
func TestPlansReplay(t *testing.T) {
	for name, plan := range map[string]func(*rand.Rand) Faults{"client": ClientHop, "target": TargetHop} {
		t.Run(name, func(t *testing.T) {
			var faulty int
			for n := range uint64(500) {
				a := plan(rand.New(rand.NewPCG(42, n)))
				if b := plan(rand.New(rand.NewPCG(42, n))); a != b {
					t.Fatalf("connection %d: %+v then %+v from one seed", n, a, b)
				}
				if a.PauseUp.For > MaxPause || a.PauseDown.For > MaxPause {
					t.Fatalf("connection %d: pause over %v: %+v", n, MaxPause, a)
				}
				if name == "target" && (a.ResetAfter != 0 || a.CutAfter != 0) {
					t.Fatalf("target hop with a reset or cut: %+v", a)
				}
				if a.ResetAfter != 0 && a.CutAfter != 0 {
					t.Fatalf("connection %d: both reset and cut: %+v", n, a)
				}
				if a != (Faults{}) {
					faulty++
				}
			}
			if faulty < 100 {
				t.Fatalf("only %d of 500 connections with a fault", faulty)
			}
		})
	}
}

// A pause whose offset lies past the reset's never comes; one before it
// comes first, and the reset still cuts at its own offset.
func TestPauseAndReset(t *testing.T) {
	for name, at := range map[string]int64{"pause after reset": 900, "pause before reset": 100} {
		t.Run(name, func(t *testing.T) {
			u := newUpstream(t)
			p := start(t, u, Faults{ResetAfter: 300, PauseDown: Stop{At: at, For: 10 * time.Millisecond}})
			c := dial(t, p)
			if _, err := c.Write(payload(5000)); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if !errors.Is(err, syscall.ECONNRESET) || !bytes.Equal(got, payload(300)) {
				t.Fatalf("read %d bytes, %v; want the first 300 and a reset", len(got), err)
			}
			<-u.got
		})
	}
}
