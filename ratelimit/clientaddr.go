package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr returns a function that finds a request's client address:
// the peer's address, unless the peer is a trusted proxy (inside one of
// trusted), in which case X-Forwarded-For is read from the right, skipping
// trusted proxies, and the first untrusted address is the client. Entries
// further left were written by the client itself and cannot be believed.
// With no trusted prefixes, X-Forwarded-For is ignored.
func ClientAddr(trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
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
