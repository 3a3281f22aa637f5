package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialTimeout bounds every dial in these tests.
const dialTimeout = 5 * time.Second

var errNoDNS = errors.New("netguard test: DNS disabled, only loopback traffic allowed")

// testDialer is g.Dialer with a resolver that never sends a DNS query, so
// the tests stay on loopback: /etc/hosts still answers "localhost", and any
// other name fails to resolve.
func testDialer(g *Guard) *net.Dialer {
	d := g.Dialer(dialTimeout)
	d.Resolver = &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errNoDNS
		},
	}
	return d
}

// countingListener is a TCP listener on 127.0.0.1 that counts the
// connections it accepts and closes them at once.
type countingListener struct {
	ln       net.Listener
	accepted atomic.Int64
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cl := &countingListener{ln: ln}
	done := make(chan struct{})
	go func() { // owned by the cleanup below, which closes ln and waits
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cl.accepted.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return cl
}

func (cl *countingListener) port() string {
	return strconv.Itoa(cl.ln.Addr().(*net.TCPAddr).Port)
}

func waitFor(t *testing.T, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not met before deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDialRefused(t *testing.T) {
	cl := newCountingListener(t)
	strict := testDialer(New(Config{}))
	cases := []struct {
		host string
		// mustBlock: the guard itself must refuse. Otherwise the name may
		// also fail to resolve; either way nothing may connect.
		mustBlock bool
	}{
		{"localhost", true},
		{"127.0.0.1", true},
		{"[::ffff:127.0.0.1]", true},
		{"[::1]", true},
		{"0.0.0.0", true},
		{"[::]", true},
		{"127.1", false},
		{"2130706433", false},
		{"0x7f000001", false},
		{"017700000001", false},
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), dialTimeout)
			defer cancel()
			c, err := strict.DialContext(ctx, "tcp", tc.host+":"+cl.port())
			if err == nil {
				_ = c.Close()
				t.Fatal("dial succeeded, want refused")
			}
			if tc.mustBlock && !IsBlocked(err) {
				t.Fatalf("error %v is not a *BlockedError", err)
			}
			t.Logf("refused: %v", err)
		})
	}

	// Connections reach the accept queue in order, so once this allowed
	// dial has been accepted any earlier connection would have been too:
	// a count of exactly one proves the refused dials never connected.
	t.Run("AllowPrivate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), dialTimeout)
		defer cancel()
		c, err := testDialer(New(Config{AllowPrivate: true})).DialContext(ctx, "tcp", "127.0.0.1:"+cl.port())
		if err != nil {
			t.Fatalf("dial with AllowPrivate: %v", err)
		}
		_ = c.Close()
		waitFor(t, dialTimeout, func() bool { return cl.accepted.Load() >= 1 })
		if n := cl.accepted.Load(); n != 1 {
			t.Fatalf("listener accepted %d connections, want 1", n)
		}
	})
}

func TestDialSelf(t *testing.T) {
	cl := newCountingListener(t)
	self := netip.MustParseAddrPort(cl.ln.Addr().String())
	wildcard := netip.AddrPortFrom(netip.IPv4Unspecified(), self.Port())
	for name, s := range map[string]netip.AddrPort{"exact": self, "wildcard": wildcard} {
		t.Run(name, func(t *testing.T) {
			d := testDialer(New(Config{AllowPrivate: true, Self: []netip.AddrPort{s}}))
			ctx, cancel := context.WithTimeout(t.Context(), dialTimeout)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", "localhost:"+cl.port())
			if err == nil {
				_ = c.Close()
				t.Fatal("dialed own listen address")
			}
			if !IsBlocked(err) {
				t.Fatalf("error %v is not a *BlockedError", err)
			}
		})
	}
	if n := cl.accepted.Load(); n != 0 {
		t.Fatalf("listener accepted %d connections, want 0", n)
	}
}

// TestWebSocketDial checks the guard through the whole client stack the
// relay uses: coder/websocket over net/http over the guard's dialer, and
// that the *BlockedError survives the wrapping of all three.
func TestWebSocketDial(t *testing.T) {
	var handshakes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handshakes.Add(1)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_ = c.Close(websocket.StatusNormalClosure, "")
	}))
	t.Cleanup(srv.Close)
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)

	dial := func(t *testing.T, g *Guard) error {
		t.Helper()
		tr := &http.Transport{DialContext: testDialer(g).DialContext}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(t.Context(), dialTimeout)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws://localhost:"+port+"/", &websocket.DialOptions{
			HTTPClient: &http.Client{Transport: tr},
		})
		if err == nil {
			_ = c.CloseNow()
		}
		return err
	}

	t.Run("strict", func(t *testing.T) {
		err := dial(t, New(Config{}))
		if err == nil {
			t.Fatal("websocket.Dial succeeded, want refused")
		}
		if !IsBlocked(err) {
			t.Fatalf("IsBlocked(%v) = false", err)
		}
		t.Logf("refused: %v", err)
		var be *BlockedError
		if errors.As(err, &be); !be.Addr.IsLoopback() {
			t.Fatalf("BlockedError.Addr = %v, want loopback", be.Addr)
		}
		if n := handshakes.Load(); n != 0 {
			t.Fatalf("server saw %d handshakes, want 0", n)
		}
	})
	t.Run("AllowPrivate", func(t *testing.T) {
		if err := dial(t, New(Config{AllowPrivate: true})); err != nil {
			t.Fatalf("websocket.Dial with AllowPrivate: %v", err)
		}
		if n := handshakes.Load(); n != 1 {
			t.Fatalf("server saw %d handshakes, want 1", n)
		}
	})
}
