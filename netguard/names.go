package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// DialFunc returns the relay's target dial, for session.Config's
// DialContext. Before any DNS lookup it refuses a host that ends in a
// number without being an IP address (see EndsInNumber), and it sends a
// dial of the relay itself (IsSelfHost) to self, or refuses it when self
// is nil; everything else goes through Dialer(timeout), whose Control
// judges every address it connects to, Config.Self included (a name
// that resolves to the relay's own address is refused there).
//
// self exists for the built-in echo target of `polysocket both`, which
// lives on the relay's own listener: it should return a connection to a
// server that has the echo alone, so that a target naming the relay
// reaches the echo and never the relay's /create or session paths (one
// nested /create would otherwise turn into several).
func (g *Guard) DialFunc(timeout time.Duration, self func(ctx context.Context) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := g.Dialer(timeout)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return d.DialContext(ctx, network, addr) // fails with the parse error
		}
		_, ipErr := netip.ParseAddr(host)
		if ipErr != nil && EndsInNumber(host) {
			return nil, &BlockedError{Reason: fmt.Sprintf("host %q is a numeric IPv4 spelling, not a DNS name", host)}
		}
		if port, perr := strconv.ParseUint(portStr, 10, 16); perr == nil && g.IsSelfHost(host, uint16(port)) {
			if self == nil {
				return nil, &BlockedError{Reason: fmt.Sprintf("%s is the relay itself", addr)}
			}
			return self(ctx)
		}
		return d.DialContext(ctx, network, addr)
	}
}

// IsSelfHost reports whether host (a name or IP literal, no brackets)
// on port names the relay itself: an address in Config.Self (an
// unspecified one meaning every local address), "localhost" or a name
// under it when the relay listens on loopback at port, or one of
// Config.SelfNames or a name under it. It asks no DNS server.
func (g *Guard) IsSelfHost(host string, port uint16) bool {
	host = normalHost(host)
	if a, err := netip.ParseAddr(host); err == nil {
		if g.isSelf(a, port) {
			return true
		}
	} else if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		// RFC 6761: localhost names resolve to loopback.
		if g.isSelf(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port) || g.isSelf(netip.IPv6Loopback(), port) {
			return true
		}
	}
	for _, n := range g.selfNames {
		if (host == n.host || strings.HasSuffix(host, "."+n.host)) && (n.port == 0 || n.port == port) {
			return true
		}
	}
	return false
}

// selfName is a parsed Config.SelfNames entry; port 0 means any.
type selfName struct {
	host string
	port uint16
}

// parseSelfName reads "host" or "host:port"; ok is false for garbage.
func parseSelfName(s string) (selfName, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		host, portStr = s, ""
	}
	host = normalHost(host)
	if host == "" {
		return selfName{}, false
	}
	n := selfName{host: host}
	if portStr != "" {
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return selfName{}, false
		}
		n.port = uint16(p)
	}
	return n, true
}

// normalHost is host lower-cased, without brackets or a trailing dot,
// and an IP address in its canonical form (unmapped, no zone), so that
// names compare as strings.
func normalHost(host string) string {
	host = strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "."))
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return host
}

// EndsInNumber reports whether host's last label (ignoring one trailing
// dot) is all decimal digits or a 0x hexadecimal number: the WHATWG URL
// rule for a host that is an IPv4 address. Browsers read 127.1,
// 2130706433, 0x7f000001 and 017700000001 as IPv4 addresses, and no
// public DNS name looks like that (no top-level domain is numeric), so
// rather than ask DNS about them the relay refuses them outright (an IP
// literal goes on to the guard).
func EndsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}
