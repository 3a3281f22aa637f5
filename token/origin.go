package token

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// OriginPattern is a parsed origin pattern, see ParseOriginPattern. The
// zero value matches nothing.
type OriginPattern struct {
	raw    string
	any    bool // "*"
	scheme string
	host   hostPattern
	port   int // 0 means any port; -1 means no port (scheme without default)
}

// ParseOriginPattern parses "*" or "scheme://host[:port]". "*" matches
// every origin, including an absent one and "null". Otherwise the scheme
// matches exactly (case-insensitively); the host is a name or IP literal,
// "*" or "*.example.com" (subdomains only) and matches case-insensitively;
// the port is a number, "*" for any, or omitted for the scheme's default
// (http 80, https 443), so "https://x" and "https://x:443" are the same.
// A single trailing "/" is tolerated. "null" is refused: only "*" admits
// the null origin, because any sandboxed page can send it.
func ParseOriginPattern(s string) (OriginPattern, error) {
	if s == "*" {
		return OriginPattern{raw: s, any: true}, nil
	}
	if strings.EqualFold(s, "null") {
		return OriginPattern{}, fmt.Errorf("origin pattern %q: the null origin can only be allowed by \"*\"", s)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !validScheme(scheme) {
		return OriginPattern{}, fmt.Errorf("origin pattern %q: want \"*\" or scheme://host[:port]", s)
	}
	rest = strings.TrimSuffix(rest, "/")
	if strings.ContainsAny(rest, "/?#@ \t\r\n") {
		return OriginPattern{}, fmt.Errorf("origin pattern %q: path, query, fragment, userinfo and spaces are not allowed", s)
	}
	p := OriginPattern{raw: s, scheme: strings.ToLower(scheme)}
	def := defaultPort(p.scheme)
	if def == 0 {
		def = -1
	}
	var err error
	p.host, p.port, err = parseAuthorityPattern(rest, def)
	if err != nil {
		return OriginPattern{}, fmt.Errorf("origin pattern %q: %w", s, err)
	}
	return p, nil
}

// validScheme reports whether s is an RFC 3986 scheme.
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return false
		}
		if !letter && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// String returns the pattern as it was written.
func (p OriginPattern) String() string { return p.raw }

// Match reports whether origin, as returned by OriginOf, is allowed. ""
// (no origin) and "null" match only "*".
func (p OriginPattern) Match(origin string) bool {
	if p.any {
		return true
	}
	if p.scheme == "" || origin == "" || origin == "null" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	if strings.ToLower(u.Scheme) != p.scheme || !p.host.match(u.Hostname()) {
		return false
	}
	if p.port == 0 {
		return true
	}
	port := urlPort(u)
	if port == 0 {
		port = -1 // no port, scheme without a default
	}
	return port == p.port
}

// OriginOf returns the origin of the page that sent r: the Origin header
// if present (possibly "null"), else scheme://host[:port] of the Referer,
// else "". Browsers omit Origin on some GETs (such as JSONP script loads)
// but usually send a Referer.
func OriginOf(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return o
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return ""
	}
	u, err := url.Parse(ref)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme) + "://" + u.Host
}
