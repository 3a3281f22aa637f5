package token

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// hostPattern matches a URL's host name: exactly (case-insensitively,
// IP literals compared as addresses), any host, or any subdomain.
type hostPattern struct {
	any    bool   // "*"
	suffix string // ".example.com" for "*.example.com"
	exact  string // lower-case name or canonical IP
}

// parseAuthorityPattern parses "host[:port]" of a pattern; the port is
// a number, "*" (returned as 0, any port) or omitted (defPort).
func parseAuthorityPattern(authority string, defPort int) (hostPattern, int, error) {
	host, port, hasPort := splitHostPort(authority)
	if host == "" {
		return hostPattern{}, 0, errors.New("a host is required")
	}
	h, err := parseHostPattern(host)
	if err != nil {
		return hostPattern{}, 0, err
	}
	switch {
	case !hasPort:
		return h, defPort, nil
	case port == "*":
		return h, 0, nil
	}
	n, ok := parsePort(port)
	if !ok {
		return hostPattern{}, 0, fmt.Errorf("invalid port %q (want 1-65535 or *)", port)
	}
	return h, n, nil
}

// parseHostPattern parses "*", "*.example.com", a name, or an IP literal
// (IPv6 in brackets).
func parseHostPattern(host string) (hostPattern, error) {
	if host == "*" {
		return hostPattern{any: true}, nil
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return hostPattern{}, errors.New("invalid IPv6 host")
		}
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return hostPattern{}, errors.New("invalid IPv6 host")
		}
		return hostPattern{exact: a.String()}, nil
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		if !validDNSName(rest) {
			return hostPattern{}, fmt.Errorf("invalid host %q", host)
		}
		return hostPattern{suffix: "." + strings.ToLower(rest)}, nil
	}
	if !validDNSName(host) {
		return hostPattern{}, fmt.Errorf("invalid host %q ('*' only as the whole host or as a leading '*.')", host)
	}
	return hostPattern{exact: strings.ToLower(host)}, nil
}

// match reports whether the host name (no brackets, no port) matches.
func (h hostPattern) match(name string) bool {
	if h.any {
		return name != ""
	}
	name = strings.ToLower(name)
	if strings.Contains(name, ":") {
		a, err := netip.ParseAddr(name)
		if err != nil {
			return false
		}
		name = a.String()
	}
	if h.suffix != "" {
		return len(name) > len(h.suffix) && strings.HasSuffix(name, h.suffix)
	}
	return h.exact != "" && name == h.exact
}
