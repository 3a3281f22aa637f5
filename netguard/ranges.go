package netguard

import (
	"fmt"
	"net/netip"
)

// class says how hard a range is refused.
type class uint8

const (
	// special ranges are refused unless Config.AllowPrivate is set or a
	// Config.Allow prefix contains the address.
	special class = iota
	// always ranges are refused whatever the Config says: no legitimate
	// WebSocket server lives at an unspecified, multicast or broadcast
	// address, and dialing 0.0.0.0 reaches the local machine on Linux.
	always
)

// rng is one refused range. Reason is what BlockedError reports: the
// registry name and the RFC that defines it.
type rng struct {
	prefix netip.Prefix
	reason string
	class  class
	// embedded reports the IPv4 address an IPv6 transition form carries,
	// for a more useful error message; nil when there is none.
	embedded func(netip.Addr) netip.Addr
}

func entry(p, reason string, c class) rng {
	return rng{prefix: netip.MustParsePrefix(p), reason: reason, class: c}
}

func embedEntry(p, reason string, embedded func(netip.Addr) netip.Addr) rng {
	return rng{prefix: netip.MustParsePrefix(p), reason: reason, class: special, embedded: embedded}
}

// v4At returns the IPv4 address stored in bytes off..off+3 of a.
func v4At(off int) func(netip.Addr) netip.Addr {
	return func(a netip.Addr) netip.Addr {
		b := a.As16()
		return netip.AddrFrom4([4]byte(b[off : off+4]))
	}
}

// v4Ranges is the IANA IPv4 Special-Purpose Address Registry (RFC 6890,
// RFC 8190 and later entries) plus multicast (RFC 5771), which lives in
// its own registry. Keep docs/SSRF.md in step with this table.
var v4Ranges = []rng{
	entry("0.0.0.0/8", `"this network" (RFC 791)`, always),
	entry("0.0.0.0/32", "unspecified (RFC 1122)", always),
	entry("10.0.0.0/8", "private-use (RFC 1918)", special),
	entry("100.64.0.0/10", "shared address space / CGNAT (RFC 6598)", special),
	entry("127.0.0.0/8", "loopback (RFC 1122)", special),
	entry("169.254.0.0/16", "link-local (RFC 3927)", special),
	entry("169.254.169.254/32", "link-local cloud metadata service (RFC 3927)", special),
	entry("172.16.0.0/12", "private-use (RFC 1918)", special),
	entry("192.0.0.0/24", "IETF protocol assignments (RFC 6890)", special),
	entry("192.0.0.0/29", "DS-Lite (RFC 7335)", special),
	entry("192.0.0.8/32", "IPv4 dummy address (RFC 7600)", special),
	entry("192.0.0.9/32", "PCP anycast (RFC 7723)", special),
	entry("192.0.0.10/32", "TURN anycast (RFC 8155)", special),
	entry("192.0.0.170/31", "NAT64/DNS64 discovery (RFC 8880)", special),
	entry("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)", special),
	entry("192.31.196.0/24", "AS112-v4 (RFC 7535)", special),
	entry("192.52.193.0/24", "AMT (RFC 7450)", special),
	entry("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)", special),
	entry("192.168.0.0/16", "private-use (RFC 1918)", special),
	entry("192.175.48.0/24", "AS112 direct delegation (RFC 7534)", special),
	entry("198.18.0.0/15", "benchmarking (RFC 2544)", special),
	entry("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)", special),
	entry("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)", special),
	entry("224.0.0.0/4", "multicast (RFC 5771)", always),
	entry("240.0.0.0/4", "reserved (RFC 1112)", special),
	entry("255.255.255.255/32", "limited broadcast (RFC 919)", always),
}

// v6Ranges is the IANA IPv6 Special-Purpose Address Registry (RFC 6890,
// RFC 8190 and later entries) plus the deprecated and multicast blocks of
// RFC 4291 and RFC 3879. ::ffff:0:0/96 (IPv4-mapped) is not here: Check
// unmaps it and judges the IPv4 address instead.
var v6Ranges = []rng{
	entry("::/128", "unspecified (RFC 4291)", always),
	entry("::1/128", "loopback (RFC 4291)", special),
	embedEntry("::/96", "deprecated IPv4-compatible (RFC 4291)", v4At(12)),
	embedEntry("::ffff:0:0:0/96", "IPv4-translated (RFC 2765)", v4At(12)),
	embedEntry("64:ff9b::/96", "NAT64 well-known prefix (RFC 6052)", v4At(12)),
	entry("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)", special),
	entry("100::/64", "discard-only (RFC 6666)", special),
	entry("100:0:0:1::/64", "dummy IPv6 prefix (RFC 9780)", special),
	entry("2001::/23", "IETF protocol assignments (RFC 2928)", special),
	entry("2001::/32", "Teredo (RFC 4380)", special),
	entry("2001:1::1/128", "PCP anycast (RFC 7723)", special),
	entry("2001:1::2/128", "TURN anycast (RFC 8155)", special),
	entry("2001:1::3/128", "DNS-SD SRP anycast (RFC 9665)", special),
	entry("2001:2::/48", "benchmarking (RFC 5180)", special),
	entry("2001:3::/32", "AMT (RFC 7450)", special),
	entry("2001:4:112::/48", "AS112-v6 (RFC 7535)", special),
	entry("2001:10::/28", "deprecated ORCHID (RFC 4843)", special),
	entry("2001:20::/28", "ORCHIDv2 (RFC 7343)", special),
	entry("2001:30::/28", "drone remote ID tags (RFC 9374)", special),
	entry("2001:db8::/32", "documentation (RFC 3849)", special),
	embedEntry("2002::/16", "6to4 (RFC 3056)", v4At(2)),
	entry("2620:4f:8000::/48", "AS112 direct delegation (RFC 7534)", special),
	entry("3fff::/20", "documentation (RFC 9637)", special),
	entry("5f00::/16", "segment routing SIDs (RFC 9602)", special),
	entry("fc00::/7", "unique local (RFC 4193)", special),
	entry("fe80::/10", "link-local (RFC 4291)", special),
	entry("fec0::/10", "deprecated site-local (RFC 3879)", special),
	entry("ff00::/8", "multicast (RFC 4291)", always),
}

// lookup returns the most specific range containing a (already unmapped
// and without zone), so that 169.254.169.254 reports the metadata service
// rather than plain link-local. The class is the strictest of all matches.
func lookup(a netip.Addr) (match rng, ok bool) {
	table := v6Ranges
	if a.Is4() {
		table = v4Ranges
	}
	strictest := special
	for _, e := range table {
		if !e.prefix.Contains(a) {
			continue
		}
		if !ok || e.prefix.Bits() > match.prefix.Bits() {
			match, ok = e, true
		}
		strictest = max(strictest, e.class)
	}
	match.class = strictest
	return match, ok
}

// describe is the reason text for a, including the IPv4 address an IPv6
// transition form embeds.
func (e rng) describe(a netip.Addr) string {
	if e.embedded == nil {
		return e.reason
	}
	return fmt.Sprintf("%s embedding %s", e.reason, e.embedded(a))
}
