package netguard

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

func TestEndsInNumber(t *testing.T) {
	for host, want := range map[string]bool{
		"127.1": true, "2130706433": true, "0x7f000001": true, "0X7F000001": true,
		"017700000001": true, "0177.0.0.1": true, "example.123": true, "a.0x1f.": true,
		"example.com": false, "1.example": false, "0x": true, "localhost": false,
		"": false, "a.": false, "123abc": false, "0xzz": false,
	} {
		if got := EndsInNumber(host); got != want {
			t.Errorf("EndsInNumber(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestIsSelfHost(t *testing.T) {
	ap := netip.MustParseAddrPort
	loop := New(Config{AllowPrivate: true, Self: []netip.AddrPort{ap("127.0.0.1:8080"), ap("127.0.0.1:9090")}, SelfNames: []string{"localhost:8080"}})
	wild := New(Config{Self: []netip.AddrPort{ap("[::]:8080")}, SelfNames: []string{"Relay1.Example.com."}})
	for _, tc := range []struct {
		name string
		g    *Guard
		host string
		port uint16
		want bool
	}{
		{"listen address", loop, "127.0.0.1", 8080, true},
		{"admin listener", loop, "127.0.0.1", 9090, true},
		{"mapped", loop, "::ffff:127.0.0.1", 8080, true},
		{"other port", loop, "127.0.0.1", 8081, false},
		{"localhost", loop, "localhost", 8080, true},
		{"localhost trailing dot", loop, "LOCALHOST.", 8080, true},
		{"localhost admin port", loop, "localhost", 9090, true},
		{"localhost other port", loop, "localhost", 5000, false},
		{"session host", loop, "k3x9abc.localhost", 8080, true},
		{"other loopback", loop, "127.0.0.2", 8080, false},
		{"wildcard: loopback", wild, "127.0.0.9", 8080, true},
		{"wildcard: ::1", wild, "::1", 8080, true},
		{"wildcard: this host", wild, "0.0.0.0", 8080, false}, // the guard refuses it anyway
		{"wildcard: localhost", wild, "localhost", 8080, true},
		{"fqdn", wild, "relay1.example.com", 443, true},
		{"fqdn any port", wild, "relay1.example.com", 6379, true},
		{"session host of fqdn", wild, "abc.relay1.example.com", 80, true},
		{"fqdn case and dot", wild, "ABC.Relay1.Example.COM.", 80, true},
		{"not a subdomain", wild, "xrelay1.example.com", 443, false},
		{"parent", wild, "example.com", 443, false},
		{"public", wild, "203.0.113.7", 8080, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.g.IsSelfHost(tc.host, tc.port); got != tc.want {
				t.Errorf("IsSelfHost(%q, %d) = %v, want %v", tc.host, tc.port, got, tc.want)
			}
		})
	}
}

// TestDialFunc checks, with real listeners, that a dial of the relay
// itself reaches the self function (or is refused without it) and never
// the relay's listener, and that numeric names are refused before any
// connection.
func TestDialFunc(t *testing.T) {
	relay := newCountingListener(t) // the relay's own listener
	echo := newCountingListener(t)  // what self dials instead
	other := newCountingListener(t) // an ordinary local target
	self := []netip.AddrPort{netip.MustParseAddrPort(relay.ln.Addr().String())}
	g := New(Config{AllowPrivate: true, Self: self, SelfNames: []string{"relay.test"}})
	toEcho := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", echo.ln.Addr().String())
	}
	ctx := context.Background()
	dial := g.DialFunc(dialTimeout, toEcho)
	for _, addr := range []string{
		"127.0.0.1:" + relay.port(),
		"localhost:" + relay.port(),
		"abc.localhost:" + relay.port(),
		"relay.test:" + other.port(), // the fqdn: any port
		"sid.relay.test:80",
	} {
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v, want the self connection", addr, err)
		}
		c.Close()
	}
	waitFor(t, dialTimeout, func() bool { return echo.accepted.Load() == 5 })
	c, err := dial(ctx, "tcp", "127.0.0.1:"+other.port())
	if err != nil {
		t.Fatalf("an ordinary target: %v", err)
	}
	c.Close()
	waitFor(t, dialTimeout, func() bool { return other.accepted.Load() == 1 })

	refuse := g.DialFunc(dialTimeout, nil)
	for _, addr := range []string{"127.0.0.1:" + relay.port(), "localhost:" + relay.port(), "x.relay.test:443", "127.1:" + other.port(), "0x7f000001:" + other.port()} {
		if c, err := refuse(ctx, "tcp", addr); !IsBlocked(err) {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s: %v, want a BlockedError", addr, err)
		}
	}
	if n := relay.accepted.Load(); n != 0 {
		t.Errorf("the relay's own listener accepted %d connections", n)
	}
	if n := other.accepted.Load(); n != 1 {
		t.Errorf("the ordinary target accepted %d connections, want 1", n)
	}
}
