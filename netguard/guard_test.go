package netguard

import (
	"net/netip"
	"strings"
	"testing"
)

// checkCase is one Check expectation: want is the empty string when addr
// must be allowed, otherwise a substring of the refusal reason.
type checkCase struct {
	addr string
	want string
}

func runCheck(t *testing.T, g *Guard, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			err := g.Check(netip.MustParseAddr(tc.addr))
			assertVerdict(t, err, tc.want)
		})
	}
}

func assertVerdict(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("refused, want allowed: %v", err)
	case want != "" && err == nil:
		t.Fatalf("allowed, want refused (%s)", want)
	case want != "" && !IsBlocked(err):
		t.Fatalf("error %v (%T) is not a *BlockedError", err, err)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not mention %q", err, want)
	}
}

func TestCheckStrict(t *testing.T) {
	runCheck(t, New(Config{}), []checkCase{
		// Public addresses: only judged, never dialed.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"2606:4700::1111", ""},
		{"2a00:1450:4001::1", ""},
		{"::ffff:8.8.8.8", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"172.32.0.1", ""},
		{"198.20.0.1", ""},
		{"223.255.255.255", ""},

		// IPv4 special-purpose registry.
		{"0.0.0.0", "unspecified (RFC 1122)"},
		{"0.1.2.3", `"this network" (RFC 791)`},
		{"10.0.0.1", "private-use (RFC 1918)"},
		{"10.255.255.255", "private-use"},
		{"100.64.0.1", "CGNAT (RFC 6598)"},
		{"100.127.255.254", "CGNAT"},
		{"127.0.0.1", "loopback (RFC 1122)"},
		{"127.255.255.254", "loopback"},
		{"169.254.1.1", "link-local (RFC 3927)"},
		{"169.254.169.254", "cloud metadata"},
		{"172.16.0.1", "private-use"},
		{"172.31.255.255", "private-use"},
		{"192.0.0.1", "DS-Lite (RFC 7335)"},
		{"192.0.0.8", "dummy"},
		{"192.0.0.9", "PCP anycast"},
		{"192.0.0.10", "TURN anycast"},
		{"192.0.0.170", "NAT64/DNS64 discovery"},
		{"192.0.0.171", "NAT64/DNS64 discovery"},
		{"192.0.0.200", "IETF protocol assignments (RFC 6890)"},
		{"192.0.2.1", "TEST-NET-1 (RFC 5737)"},
		{"192.31.196.1", "AS112-v4"},
		{"192.52.193.1", "AMT"},
		{"192.88.99.1", "6to4 relay anycast (RFC 7526)"},
		{"192.168.1.1", "private-use"},
		{"192.175.48.1", "AS112 direct delegation"},
		{"198.18.0.1", "benchmarking (RFC 2544)"},
		{"198.19.255.255", "benchmarking"},
		{"198.51.100.7", "TEST-NET-2"},
		{"203.0.113.7", "TEST-NET-3"},
		{"224.0.0.1", "multicast (RFC 5771)"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved (RFC 1112)"},
		{"255.255.255.254", "reserved"},
		{"255.255.255.255", "limited broadcast (RFC 919)"},

		// IPv6 special-purpose registry.
		{"::", "unspecified (RFC 4291)"},
		{"::1", "loopback (RFC 4291)"},
		{"::ffff:127.0.0.1", "loopback (RFC 1122)"},
		{"::ffff:10.0.0.1", "private-use"},
		{"::ffff:169.254.169.254", "cloud metadata"},
		{"::ffff:0.0.0.0", "unspecified (RFC 1122)"},
		{"::127.0.0.1", "IPv4-compatible (RFC 4291) embedding 127.0.0.1"},
		{"::8.8.8.8", "IPv4-compatible"},
		{"::ffff:0:127.0.0.1", "IPv4-translated"},
		{"64:ff9b::7f00:1", "NAT64 well-known prefix (RFC 6052) embedding 127.0.0.1"},
		{"64:ff9b::808:808", "NAT64"},
		{"64:ff9b:1::1", "local-use NAT64 (RFC 8215)"},
		{"100::1", "discard-only (RFC 6666)"},
		{"100:0:0:1::1", "dummy IPv6 prefix"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo (RFC 4380)"},
		{"2001::1", "Teredo"},
		{"2001:1::1", "PCP anycast"},
		{"2001:1::2", "TURN anycast"},
		{"2001:1::3", "SRP anycast"},
		{"2001:1::4", "IETF protocol assignments (RFC 2928)"},
		{"2001:2::1", "benchmarking (RFC 5180)"},
		{"2001:3::1", "AMT"},
		{"2001:4:112::1", "AS112-v6"},
		{"2001:10::1", "ORCHID"},
		{"2001:20::1", "ORCHIDv2"},
		{"2001:30::1", "drone"},
		{"2001:1ff:ffff::1", "IETF protocol assignments"},
		{"2001:db8::1", "documentation (RFC 3849)"},
		{"2002:7f00:1::", "6to4 (RFC 3056) embedding 127.0.0.1"},
		{"2002:808:808::1", "6to4"},
		{"2620:4f:8000::1", "AS112 direct delegation"},
		{"3fff::1", "documentation (RFC 9637)"},
		{"5f00::1", "segment routing"},
		{"fc00::1", "unique local (RFC 4193)"},
		{"fd00:ec2::254", "unique local"},
		{"fe80::1", "link-local (RFC 4291)"},
		{"fe80::1%eth0", "zone-scoped"},
		{"fec0::1", "site-local (RFC 3879)"},
		{"ff02::1", "multicast (RFC 4291)"},
		{"ff0e::1", "multicast"},
	})
}

// TestCheckTables refuses the first and last address of every table entry,
// so a typo in a prefix cannot leave a hole.
func TestCheckTables(t *testing.T) {
	g := New(Config{})
	for _, e := range append(append([]rng{}, v4Ranges...), v6Ranges...) {
		t.Run(e.prefix.String(), func(t *testing.T) {
			first := e.prefix.Masked().Addr()
			if err := g.Check(first); err == nil {
				t.Errorf("%s allowed", first)
			}
			if last := lastAddr(e.prefix); g.Check(last) == nil {
				t.Errorf("%s allowed", last)
			}
		})
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestBlockedErrorMessage(t *testing.T) {
	err := New(Config{}).Check(netip.MustParseAddr("127.0.0.1"))
	if got, want := err.Error(), "netguard: 127.0.0.1 is loopback (RFC 1122)"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if IsBlocked(nil) {
		t.Fatal("IsBlocked(nil) = true")
	}
}

func TestCheckAllowPrivate(t *testing.T) {
	runCheck(t, New(Config{AllowPrivate: true}), []checkCase{
		{"127.0.0.1", ""},
		{"::1", ""},
		{"::ffff:127.0.0.1", ""},
		{"10.0.0.1", ""},
		{"169.254.169.254", ""},
		{"fd00:ec2::254", ""},
		{"fe80::1", ""},
		{"64:ff9b::7f00:1", ""},
		{"8.8.8.8", ""},

		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
		{"::", "unspecified"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"::ffff:224.0.0.1", "multicast"},
		{"64:ff9b::e000:1", "NAT64"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"fe80::1%eth0", "zone-scoped"},
	})
}

func TestCheckAllow(t *testing.T) {
	g := New(Config{Allow: []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("::ffff:192.168.1.0/120"),
		netip.MustParsePrefix("fd00::1/8"), // not masked: New masks it
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("0.0.0.0/8"),
	}})
	runCheck(t, g, []checkCase{
		{"10.1.2.3", ""},
		{"::ffff:10.1.2.3", ""},
		{"192.168.1.5", ""},
		{"fd12::1", ""},
		{"8.8.8.8", ""},

		{"10.2.0.1", "private-use"},
		{"192.168.2.5", "private-use"},
		{"fc00::1", "unique local"},
		{"127.0.0.1", "loopback"},
		{"224.0.0.1", "multicast"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
	})
}

func TestCheckAddrPortSelf(t *testing.T) {
	ap := netip.MustParseAddrPort
	local := nonLoopbackLocalAddr(t)
	cases := []struct {
		name string
		cfg  Config
		addr netip.AddrPort
		want string
	}{
		{"exact", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("127.0.0.1:8080")}}, ap("127.0.0.1:8080"), "own listen address"},
		{"mapped", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("127.0.0.1:8080")}}, ap("[::ffff:127.0.0.1]:8080"), "own listen address"},
		{"other port", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("127.0.0.1:8080")}}, ap("127.0.0.1:8081"), ""},
		{"other loopback", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("127.0.0.1:8080")}}, ap("127.0.0.2:8080"), ""},
		{"public self", Config{Self: []netip.AddrPort{ap("8.8.8.8:443")}}, ap("8.8.8.8:443"), "own listen address"},
		{"public other port", Config{Self: []netip.AddrPort{ap("8.8.8.8:443")}}, ap("8.8.8.8:80"), ""},
		{"allow never self", Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Self: []netip.AddrPort{ap("127.0.0.1:8080")}}, ap("127.0.0.1:8080"), "own listen address"},
		{"v4 wildcard loopback", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("0.0.0.0:8080")}}, ap("127.0.0.2:8080"), "own listen address"},
		{"v4 wildcard ::1", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("0.0.0.0:8080")}}, ap("[::1]:8080"), "own listen address"},
		{"v6 wildcard loopback", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("[::]:8080")}}, ap("127.0.0.1:8080"), "own listen address"},
		{"wildcard foreign", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("[::]:8080")}}, ap("10.255.255.1:8080"), ""},
		{"wildcard other port", Config{AllowPrivate: true, Self: []netip.AddrPort{ap("[::]:8080")}}, ap("127.0.0.1:9090"), ""},
		{"still strict", Config{Self: []netip.AddrPort{ap("[::]:8080")}}, ap("127.0.0.1:9090"), "loopback"},
	}
	if local.IsValid() {
		cases = append(cases, struct {
			name string
			cfg  Config
			addr netip.AddrPort
			want string
		}{"wildcard interface " + local.String(), Config{AllowPrivate: true, Self: []netip.AddrPort{ap("0.0.0.0:8080")}}, netip.AddrPortFrom(local, 8080), "own listen address"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertVerdict(t, New(tc.cfg).CheckAddrPort(tc.addr), tc.want)
		})
	}
}

// nonLoopbackLocalAddr returns one of the machine's non-loopback,
// zone-free addresses, or the zero Addr if it has none.
func nonLoopbackLocalAddr(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := localAddrs()
	if err != nil {
		t.Fatalf("localAddrs: %v", err)
	}
	for _, a := range addrs {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			return a
		}
	}
	t.Log("no non-loopback interface address; skipping that case")
	return netip.Addr{}
}

func TestControl(t *testing.T) {
	g := New(Config{AllowPrivate: true, Self: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8080")}})
	cases := []struct {
		network, address, want string
	}{
		{"tcp", "127.0.0.1:80", ""},
		{"tcp4", "10.0.0.1:443", ""},
		{"tcp6", "[::1]:80", ""},
		{"tcp", "127.0.0.1:8080", "own listen address"},
		{"tcp", "0.0.0.0:80", "unspecified"},
		{"tcp6", "[fe80::1%eth0]:80", "zone-scoped"},
		{"tcp", "localhost:80", "not an IP address"},
		{"tcp", "127.0.0.1", "not an IP address"},
		{"unix", "/tmp/sock", "not an IP network"},
	}
	for _, tc := range cases {
		t.Run(tc.network+" "+tc.address, func(t *testing.T) {
			assertVerdict(t, g.Control(tc.network, tc.address, nil), tc.want)
		})
	}
}
