package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
)

// ClientAddr returns a function that finds a request's client address:
// the peer's address, unless the peer is a trusted proxy (inside one of
// trusted), in which case X-Forwarded-For is read from the right, skipping
// trusted proxies, and the first untrusted address is the client. Entries
// further left were written by the client itself and cannot be believed.
// With no trusted prefixes, X-Forwarded-For is ignored.
func ClientAddr(trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool { return contains(trusted, a) }
	return func(r *http.Request) string {
		peer := peerAddr(r.RemoteAddr)
		if len(trusted) == 0 || !peer.IsValid() || !isTrusted(peer) {
			return addrString(peer, r.RemoteAddr)
		}
		client := peer
		hops := r.Header.Values("X-Forwarded-For")
		for i := len(hops) - 1; i >= 0; i-- {
			parts := strings.Split(hops[i], ",")
			for j := len(parts) - 1; j >= 0; j-- {
				a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
				if err != nil {
					// A malformed hop: stop at the last address we could
					// believe.
					return client.String()
				}
				client = a.Unmap().WithZone("")
				if !isTrusted(client) {
					return client.String()
				}
			}
		}
		return client.String()
	}
}

// contains reports whether a (unmapped) is inside one of prefixes.
func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// WarnUntrusted returns a check to run on every request: the first
// request that carries X-Forwarded-For from a peer outside trusted
// calls warn once with the peer's address. ClientAddr ignores such a
// header, so behind a proxy that is not trusted every client has the
// proxy's address: all of them share one create limit (or, with a proxy
// on loopback, none is limited), and targets see the proxy as the
// client. The check may be called concurrently.
func WarnUntrusted(trusted []netip.Prefix, warn func(peer string)) func(*http.Request) {
	var warned atomic.Bool
	return func(r *http.Request) {
		if warned.Load() || len(r.Header["X-Forwarded-For"]) == 0 {
			return
		}
		peer := peerAddr(r.RemoteAddr)
		if peer.IsValid() && contains(trusted, peer) {
			return
		}
		if warned.CompareAndSwap(false, true) {
			warn(addrString(peer, r.RemoteAddr))
		}
	}
}

// peerAddr parses RemoteAddr's IP; invalid when it is not ip:port.
func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func addrString(a netip.Addr, remote string) string {
	if a.IsValid() {
		return a.String()
	}
	return remote
}

// ParsePrefixes parses CIDRs (or bare addresses, taken as single-address
// prefixes); IPv4-mapped IPv6 prefixes become their IPv4 form.
func ParsePrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// Peers are compared unmapped.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
