// Package netguard keeps the relay from being used for server-side request
// forgery (SSRF): the relay dials WebSocket URLs chosen by strangers, and
// without a guard a URL such as ws://169.254.169.254/ or ws://localhost:6379/
// would let anyone on the Internet reach services that only trust the
// relay's own network.
//
// The guard judges IP addresses, not host names. It is meant to run as the
// Control hook of a net.Dialer (see Guard.Dialer), which the standard library
// calls after name resolution with the exact address about to be connected,
// once per attempt (every happy-eyeballs fallback included). A host name that
// resolves to a public address when a URL is validated and to 127.0.0.1 when
// it is dialed (DNS rebinding) is therefore still refused.
//
// The refused ranges and their sources are listed in docs/SSRF.md.
package netguard

import (
	"errors"
	"fmt"
	"net/netip"
)

// Config says which addresses a Guard lets through. The zero Config is the
// strict production setting: every special-purpose address is refused.
type Config struct {
	// AllowPrivate lets through every special-purpose address (private,
	// loopback, link-local, CGNAT, documentation, transition prefixes, ...)
	// except those that are never valid destinations: unspecified and
	// "this network" addresses (0.0.0.0/8, ::), multicast, limited
	// broadcast, zone-scoped addresses, and the relay's own listen
	// addresses in Self. It is meant for development and for relays that
	// deliberately serve an internal network. Zero (false) refuses them.
	AllowPrivate bool

	// Allow lists prefixes that are let through even though they are
	// special-purpose, for a relay that must reach a few internal targets
	// without opening everything (for example 10.1.2.0/24). It lifts the
	// same refusals AllowPrivate lifts, only inside the prefixes; it never
	// lets through Self or the always-refused addresses. IPv4-mapped
	// prefixes (::ffff:10.0.0.0/104) are treated as their IPv4 form. Nil
	// allows nothing extra.
	Allow []netip.Prefix

	// Self lists the relay's own listen addresses, which are refused with
	// their port whatever else is allowed, so that a target URL cannot
	// make the relay dial itself (a loop that would multiply one request
	// into many). An unspecified IP (0.0.0.0:8080, [::]:8080) means "this
	// port on any local address": loopback and every address from
	// net.InterfaceAddrs, looked up at dial time. Host names must be
	// resolved by the caller. Self is only consulted by Control, which
	// knows the port; Check judges an address without a port. Nil refuses
	// no port in particular.
	Self []netip.AddrPort

	// SelfNames are the relay's public names, "host" or "host:port" (its
	// fqdn): a target host equal to one or under it ({uniq}.fqdn, the
	// session hosts) is the relay itself, on that port only, or on any
	// port without one. They are compared before DNS (IsSelfHost,
	// DialFunc), so a name that resolves to a load balancer in front of
	// the relay is still caught. Nil: none.
	SelfNames []string
}

// Guard decides whether the relay may connect to an address. Build it with
// New; a Guard is immutable and safe for concurrent use.
type Guard struct {
	allowPrivate bool
	allow        []netip.Prefix
	self         []netip.AddrPort
	selfNames    []selfName
}

// New returns a Guard for cfg. It copies the slices in cfg, so later changes
// to them have no effect.
func New(cfg Config) *Guard {
	g := &Guard{allowPrivate: cfg.AllowPrivate}
	for _, p := range cfg.Allow {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		g.allow = append(g.allow, p.Masked())
	}
	for _, s := range cfg.Self {
		if s.Addr().IsValid() {
			g.self = append(g.self, netip.AddrPortFrom(s.Addr().Unmap().WithZone(""), s.Port()))
		}
	}
	for _, s := range cfg.SelfNames {
		if n, ok := parseSelfName(s); ok {
			g.selfNames = append(g.selfNames, n)
		}
	}
	return g
}

// BlockedError reports that the guard refused an address. Test for it with
// IsBlocked or errors.As; net.Dialer, net/http and coder/websocket keep it
// reachable through their wrapping errors.
type BlockedError struct {
	// Addr is the refused address as it was dialed (before unmapping).
	Addr netip.Addr
	// Reason names the range and its source, e.g. "loopback (RFC 1122)".
	Reason string
}

// Error implements error.
func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return "netguard: refused: " + e.Reason
	}
	return fmt.Sprintf("netguard: %s is %s", e.Addr, e.Reason)
}

// IsBlocked reports whether err is, or wraps, a *BlockedError.
func IsBlocked(err error) bool {
	var be *BlockedError
	return errors.As(err, &be)
}

// Check returns a *BlockedError if the relay must not connect to addr, and
// nil if it may. It does not know the port, so Config.Self is not consulted;
// use Control (or CheckAddrPort) for a complete check of a dialed address.
func (g *Guard) Check(addr netip.Addr) error {
	if reason, ok := g.refuse(addr); ok {
		return &BlockedError{Addr: addr, Reason: reason}
	}
	return nil
}

// CheckAddrPort is Check plus Config.Self: it also refuses the relay's own
// listen addresses.
func (g *Guard) CheckAddrPort(ap netip.AddrPort) error {
	if err := g.Check(ap.Addr()); err != nil {
		return err
	}
	if g.isSelf(ap.Addr().Unmap(), ap.Port()) {
		return &BlockedError{Addr: ap.Addr(), Reason: fmt.Sprintf("the relay's own listen address (port %d)", ap.Port())}
	}
	return nil
}

// refuse returns why addr is refused, or ok=false if it is allowed.
func (g *Guard) refuse(addr netip.Addr) (reason string, ok bool) {
	if !addr.IsValid() {
		return "not a valid IP address", true
	}
	if addr.Zone() != "" {
		// A zone pins the dial to one local interface: only link-local
		// and similar on-link targets use it, never a public server.
		return "zone-scoped (RFC 4007)", true
	}
	// An IPv4-mapped address is dialed as its IPv4 address, so it gets
	// exactly the IPv4 verdict.
	a := addr.Unmap()
	e, found := lookup(a)
	if !found {
		return "", false
	}
	c := e.class
	if e.embedded != nil {
		// A transition form inherits the strictness of the IPv4 address
		// it carries: NAT64 of a multicast address stays refused.
		if inner, ok := lookup(e.embedded(a)); ok {
			c = max(c, inner.class)
		}
	}
	if c == special && (g.allowPrivate || g.allowed(a)) {
		return "", false
	}
	return e.describe(a), true
}

// allowed reports whether a (unmapped) is inside a Config.Allow prefix.
func (g *Guard) allowed(a netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
