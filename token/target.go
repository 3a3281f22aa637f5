package token

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// MaxTargetLen is the longest target URL ParseTarget accepts, in bytes.
const MaxTargetLen = 2048

// ErrInvalidTarget is wrapped by every error ParseTarget returns, so a
// caller can answer 400 without inspecting the message.
var ErrInvalidTarget = errors.New("invalid target")

// badTarget builds an ErrInvalidTarget error. The message is shown to
// users, so it says what is wrong in plain words.
func badTarget(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidTarget, fmt.Sprintf(format, args...))
}

// ParseTarget validates a client-supplied target URL and returns it with
// the scheme and host lower-cased. It accepts only ws:// and wss:// URLs
// with a host, and refuses userinfo, fragments, dot segments in the path
// (also percent-encoded ones), the path forms of checkPathForms, invalid
// ports, control characters, spaces, non-ASCII bytes and URLs longer
// than MaxTargetLen. These are refused rather than
// normalized because a pattern like "/live/*" must not be escaped with
// "/live/../admin", and because the relay dials exactly what was checked.
// Every error wraps ErrInvalidTarget.
func ParseTarget(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, badTarget("empty")
	}
	if len(raw) > MaxTargetLen {
		return nil, badTarget("longer than %d bytes", MaxTargetLen)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f {
			return nil, badTarget("contains a space or control character")
		} else if c > 0x7f {
			// Browsers percent-encode these (and punycode hosts) before
			// sending; raw ones would change length when re-encoded.
			return nil, badTarget("contains a non-ASCII character (percent-encode it)")
		}
	}
	// url.Parse drops an empty fragment ("ws://h/#"), so look for '#'
	// in the raw text.
	if strings.Contains(raw, "#") {
		return nil, badTarget("a fragment (#...) is not allowed")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, badTarget("not a URL (%s)", urlErrReason(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, badTarget("scheme must be ws or wss")
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, badTarget("a host is required (ws://host/path)")
	}
	if u.User != nil {
		return nil, badTarget("userinfo (user:password@) is not allowed")
	}
	if err := checkTargetHost(u); err != nil {
		return nil, err
	}
	if err := checkDotSegments(u.Path); err != nil {
		return nil, err
	}
	if err := checkPathForms(u); err != nil {
		return nil, err
	}
	// Re-encoding may lengthen the URL (a '"' in the path becomes %22);
	// the limit holds for what the relay will dial.
	if len(u.String()) > MaxTargetLen {
		return nil, badTarget("longer than %d bytes once encoded", MaxTargetLen)
	}
	return u, nil
}

// urlErrReason strips the URL (which the user already knows) from a
// url.Parse error.
func urlErrReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// checkTargetHost validates and lower-cases u.Host: a DNS name or an IP
// literal, and a port in 1..65535 if a colon is present.
func checkTargetHost(u *url.URL) error {
	host, port, hasPort := splitHostPort(u.Host)
	if hasPort {
		if port == "" {
			return badTarget("empty port after ':'")
		}
		if _, ok := parsePort(port); !ok {
			return badTarget("invalid port %q (must be 1-65535)", port)
		}
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return badTarget("invalid IPv6 host")
		}
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return badTarget("invalid IPv6 host")
		}
	} else if !validDNSName(host) {
		return badTarget("invalid host %q", host)
	}
	u.Host = strings.ToLower(u.Host)
	return nil
}

// splitHostPort splits "host:port" or "[v6]:port". hasPort reports a
// colon after the host even when the port is empty ("h:").
func splitHostPort(hostport string) (host, port string, hasPort bool) {
	if strings.HasPrefix(hostport, "[") {
		i := strings.IndexByte(hostport, ']')
		if i < 0 {
			return hostport, "", false
		}
		host, rest := hostport[:i+1], hostport[i+1:]
		if p, ok := strings.CutPrefix(rest, ":"); ok {
			return host, p, true
		}
		if rest != "" {
			// Garbage after ']' makes the host invalid.
			return hostport, "", false
		}
		return host, "", false
	}
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return hostport, "", false
	}
	return hostport[:i], hostport[i+1:], true
}

// parsePort parses a decimal port in 1..65535.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return n, true
}

// validDNSName reports whether s is a dot-separated list of non-empty
// labels of letters, digits, '-' and '_' (an IPv4 address qualifies).
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
				c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

// checkDotSegments refuses "." and ".." segments in the decoded path.
// Checking the decoded path also catches "%2e%2e" and "%2F..%2F"; a
// backslash counts as a separator because some servers treat it as one.
func checkDotSegments(path string) error {
	segs := strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '\\' })
	for _, s := range segs {
		if s == "." || s == ".." {
			return badTarget("dot segments (/./ or /../) are not allowed in the path")
		}
	}
	return nil
}

// checkPathForms refuses the path forms that servers and proxies read
// differently from the plain path a pattern is matched against, so that
// "/live/*" cannot reach "/admin" through them: ';' in a segment (Tomcat,
// Spring and Jetty drop ";..." as a path parameter, so "/live/..;/admin"
// is "/live/../admin" to them), a percent-encoded dot, slash or
// backslash (a server or a proxy that decodes once more sees a new
// segment), double encoding ("%25" that decodes into an escape: "%252e"
// and "%25%32%65" are "." after two decodings), and control characters or NUL, raw or encoded
// (C servers end the path at a NUL). It looks at the path as the relay
// will send it (EscapedPath) and as decoded.
func checkPathForms(u *url.URL) error {
	raw := u.EscapedPath()
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		switch strings.ToLower(raw[i+1 : i+3]) {
		case "2e", "2f", "5c":
			return badTarget("a percent-encoded dot, slash or backslash (%%2e, %%2f, %%5c) is not allowed in the path")
		}
	}
	// Decoded once, the path must hold no escape: "%2541" and
	// "%25%32%65" are "%41" and "%2e" here, "A" and "." to a second
	// decoding.
	for i := 0; i+2 < len(u.Path); i++ {
		if u.Path[i] == '%' && isHex(u.Path[i+1]) && isHex(u.Path[i+2]) {
			return badTarget("double percent-encoding (%%25 followed by two hex digits) is not allowed in the path")
		}
	}
	if strings.IndexByte(u.Path, ';') >= 0 {
		return badTarget("';' is not allowed in the path (servers read ;... in a segment as a parameter)")
	}
	for i := 0; i < len(u.Path); i++ {
		if c := u.Path[i]; c < ' ' || c == 0x7f {
			return badTarget("a control character or NUL (also percent-encoded) is not allowed in the path")
		}
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// defaultPort is the port a URL of the scheme means when it names none;
// 0 for schemes without one.
func defaultPort(scheme string) int {
	switch scheme {
	case "ws", "http":
		return 80
	case "wss", "https":
		return 443
	}
	return 0
}

// TargetPattern is a parsed target pattern, see ParseTargetPattern. The
// zero value matches nothing.
type TargetPattern struct {
	raw     string
	scheme  string
	host    hostPattern
	port    int // 0 means any port
	path    string
	prefix  bool // path is a prefix
	anyPath bool
}

// ParseTargetPattern parses "scheme://host[:port][/path]". The scheme is
// ws or wss. The host is a name or IP literal (IPv6 in brackets), "*"
// for any host or "*.example.com" for any subdomain of example.com (not
// example.com itself). The port is a number, "*" for any, or omitted for
// the scheme's default. The path, if given, matches exactly unless it
// ends in "*", which makes it a prefix; without a path every path
// matches. Queries and fragments are not allowed in a pattern.
func ParseTargetPattern(s string) (TargetPattern, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return TargetPattern{}, fmt.Errorf("target pattern %q: want scheme://host[:port][/path]", s)
	}
	p := TargetPattern{raw: s, scheme: strings.ToLower(scheme)}
	if p.scheme != "ws" && p.scheme != "wss" {
		return TargetPattern{}, fmt.Errorf("target pattern %q: scheme must be ws or wss", s)
	}
	if strings.ContainsAny(rest, "?#@ \t\r\n") {
		return TargetPattern{}, fmt.Errorf("target pattern %q: query, fragment, userinfo and spaces are not allowed", s)
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	var err error
	p.host, p.port, err = parseAuthorityPattern(authority, defaultPort(p.scheme))
	if err != nil {
		return TargetPattern{}, fmt.Errorf("target pattern %q: %w", s, err)
	}
	if err := p.setPath(path); err != nil {
		return TargetPattern{}, fmt.Errorf("target pattern %q: %w", s, err)
	}
	return p, nil
}

// setPath records the path part of a pattern ("" or starting with '/').
func (p *TargetPattern) setPath(path string) error {
	if path == "" {
		p.anyPath = true
		return nil
	}
	if before, ok := strings.CutSuffix(path, "*"); ok {
		path, p.prefix = before, true
	}
	if strings.Contains(path, "*") {
		return errors.New("'*' is allowed only at the end of the path")
	}
	if err := checkDotSegments(path); err != nil {
		return errors.New("dot segments are not allowed in the path")
	}
	dec, err := url.PathUnescape(path)
	if err != nil {
		return fmt.Errorf("invalid path: %w", err)
	}
	p.path = dec
	return nil
}

// String returns the pattern as it was written.
func (p TargetPattern) String() string { return p.raw }

// Match reports whether the target u, as returned by ParseTarget, is
// allowed by the pattern. The path is compared after percent-decoding;
// an empty path counts as "/"; the query is ignored.
func (p TargetPattern) Match(u *url.URL) bool {
	if p.scheme == "" || u == nil || strings.ToLower(u.Scheme) != p.scheme {
		return false
	}
	if !p.host.match(u.Hostname()) {
		return false
	}
	if p.port != 0 && urlPort(u) != p.port {
		return false
	}
	if p.anyPath {
		return true
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	if p.prefix {
		return strings.HasPrefix(path, p.path)
	}
	return path == p.path
}

// urlPort is u's port, or the scheme's default when it names none (0 if
// the scheme has none); -2 when the port is invalid, so that it matches
// no pattern.
func urlPort(u *url.URL) int {
	s := u.Port()
	if s == "" {
		return defaultPort(strings.ToLower(u.Scheme))
	}
	n, ok := parsePort(s)
	if !ok {
		return -2
	}
	return n
}
