package token

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := map[string]struct {
		raw    string
		want   string // normalized URL; "" means an error is expected
		errHas string // substring of the error
	}{
		"ws":                     {raw: "ws://example.com/x", want: "ws://example.com/x"},
		"wss with port":          {raw: "wss://example.com:8443/x?y=1", want: "wss://example.com:8443/x?y=1"},
		"no path":                {raw: "ws://example.com", want: "ws://example.com"},
		"upper-case normalized":  {raw: "WSS://API.Example.com/Live", want: "wss://api.example.com/Live"},
		"ipv6":                   {raw: "ws://[::1]:9000/x", want: "ws://[::1]:9000/x"},
		"ipv4":                   {raw: "ws://127.0.0.1:80/", want: "ws://127.0.0.1:80/"},
		"encoded non-dot":        {raw: "ws://h/a%20b", want: "ws://h/a%20b"},
		"dots inside segment ok": {raw: "ws://h/a..b/.c/", want: "ws://h/a..b/.c/"},
		"port max":               {raw: "ws://h:65535/", want: "ws://h:65535/"},

		"empty":            {raw: "", errHas: "empty"},
		"http refused":     {raw: "http://example.com/", errHas: "scheme"},
		"https refused":    {raw: "https://example.com/", errHas: "scheme"},
		"no scheme":        {raw: "example.com/x", errHas: "scheme"},
		"opaque":           {raw: "ws:example.com", errHas: "host"},
		"no host":          {raw: "ws:///x", errHas: "host"},
		"userinfo":         {raw: "ws://u:p@h/", errHas: "userinfo"},
		"user only":        {raw: "ws://u@h/", errHas: "userinfo"},
		"empty userinfo":   {raw: "ws://@h/", errHas: "userinfo"},
		"fragment":         {raw: "ws://h/x#frag", errHas: "fragment"},
		"empty fragment":   {raw: "ws://h/x#", errHas: "fragment"},
		"dotdot":           {raw: "ws://h/a/../b", errHas: "dot segments"},
		"dot":              {raw: "ws://h/a/./b", errHas: "dot segments"},
		"trailing dotdot":  {raw: "ws://h/a/..", errHas: "dot segments"},
		"trailing dot":     {raw: "ws://h/a/.", errHas: "dot segments"},
		"encoded dotdot":   {raw: "ws://h/a/%2e%2e/b", errHas: "dot segments"},
		"mixed encoded":    {raw: "ws://h/a/%2E./b", errHas: "dot segments"},
		"encoded dot":      {raw: "ws://h/%2e/b", errHas: "dot segments"},
		"encoded slash":    {raw: "ws://h/a%2f..%2fb", errHas: "dot segments"},
		"backslash dotdot": {raw: `ws://h/a\..\b`, errHas: "dot segments"},
		"port 99999":       {raw: "ws://h:99999/", errHas: "port"},
		"port 0":           {raw: "ws://h:0/", errHas: "port"},
		"port 65536":       {raw: "ws://h:65536/", errHas: "port"},
		"empty port":       {raw: "ws://h:/", errHas: "empty port"},
		"non-numeric port": {raw: "ws://h:http/", errHas: "port"},
		"ipv6 empty port":  {raw: "ws://[::1]:/", errHas: "empty port"},
		"space":            {raw: "ws://h/a b", errHas: "space"},
		"tab":              {raw: "ws://h/a\tb", errHas: "control"},
		"newline in query": {raw: "ws://h/?a=\n", errHas: "control"},
		"del":              {raw: "ws://h/\x7f", errHas: "control"},
		"too long":         {raw: "ws://h/" + strings.Repeat("a", MaxTargetLen), errHas: "longer"},
		"bad host chars":   {raw: "ws://ex!ample.com/", errHas: "host"},
		"star host":        {raw: "ws://*.example.com/", errHas: "host"},
		"empty label":      {raw: "ws://a..b/", errHas: "host"},
		"bad ipv6":         {raw: "ws://[zz]/", errHas: ""},
		"ipv4 in brackets": {raw: "ws://[127.0.0.1]/", errHas: "IP"},
		"ipv6 zone":        {raw: "ws://[fe80::1%25en0]/", errHas: "IPv6"},
		"non-ascii":        {raw: "ws://h/caf\xc3\xa9", errHas: "non-ASCII"},
		"too long encoded": {raw: "ws://h/" + strings.Repeat(`"`, MaxTargetLen/2), errHas: "once encoded"},
		"bad percent":      {raw: "ws://h/%zz", errHas: "not a URL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u, err := ParseTarget(tc.raw)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("ParseTarget(%q) = %v, want error", tc.raw, u)
				}
				if !errors.Is(err, ErrInvalidTarget) {
					t.Errorf("error %v does not wrap ErrInvalidTarget", err)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q does not mention %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.raw, err)
			}
			if got := u.String(); got != tc.want {
				t.Errorf("ParseTarget(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

func TestParseTargetPatternErrors(t *testing.T) {
	tests := map[string]string{
		"no scheme":       "example.com",
		"http":            "http://example.com",
		"empty host":      "ws://",
		"empty host port": "ws://:80",
		"bad port":        "ws://h:99999",
		"port 0":          "ws://h:0",
		"empty port":      "ws://h:",
		"star in middle":  "ws://h/a*/b",
		"star in host":    "ws://a*.example.com",
		"bare star dot":   "ws://*.",
		"query":           "ws://h/x?y",
		"fragment":        "ws://h/x#y",
		"userinfo":        "ws://u@h/",
		"dot segments":    "ws://h/a/../b",
		"bad ipv6":        "ws://[::1/x",
		"bad percent":     "ws://h/%zz",
		"space":           "ws://h/a b",
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseTargetPattern(s); err == nil {
				t.Fatalf("ParseTargetPattern(%q) succeeded, want error", s)
			} else if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name the pattern", err)
			}
		})
	}
}

func TestTargetPatternMatch(t *testing.T) {
	tests := map[string]struct {
		pattern string
		target  string
		want    bool
	}{
		"exact host":                {"wss://api.example.com", "wss://api.example.com/x", true},
		"host case-insensitive":     {"wss://API.example.COM", "WSS://api.Example.com/x", true},
		"upper-case target":         {"wss://api.example.com", "WSS://API.Example.com/", true},
		"other host":                {"wss://api.example.com", "wss://evil.com/", false},
		"suffix trick":              {"wss://example.com", "wss://evilexample.com/", false},
		"scheme exact":              {"wss://api.example.com", "ws://api.example.com/", false},
		"scheme exact ws":           {"ws://api.example.com", "wss://api.example.com/", false},
		"wildcard subdomain":        {"wss://*.example.com", "wss://a.example.com/", true},
		"wildcard deep subdomain":   {"wss://*.example.com", "wss://a.b.example.com/", true},
		"wildcard not bare":         {"wss://*.example.com", "wss://example.com/", false},
		"wildcard not suffix trick": {"wss://*.example.com", "wss://evilexample.com/", false},
		"wildcard case":             {"wss://*.Example.com", "wss://A.EXAMPLE.com/", true},
		"star host":                 {"ws://*", "ws://anything.test/", true},
		"star host ip":              {"ws://*:*", "ws://10.0.0.1:1234/", true},
		"default port omitted both": {"ws://h", "ws://h/", true},
		"pattern default target 80": {"ws://h", "ws://h:80/", true},
		"pattern 80 target default": {"ws://h:80", "ws://h/", true},
		"wss default 443":           {"wss://h", "wss://h:443/", true},
		"wss 443 target default":    {"wss://h:443", "wss://h/", true},
		"default is not any":        {"ws://h", "ws://h:8080/", false},
		"ws default is not 443":     {"ws://h", "ws://h:443/", false},
		"explicit port":             {"ws://h:8080", "ws://h:8080/", true},
		"explicit port mismatch":    {"ws://h:8080", "ws://h:8081/", false},
		"explicit port vs default":  {"ws://h:8080", "ws://h/", false},
		"any port":                  {"ws://h:*", "ws://h:1/", true},
		"any port default":          {"ws://h:*", "ws://h/", true},
		"leading zero port":         {"ws://h:80", "ws://h:0080/", true},
		"no path any path":          {"ws://h", "ws://h/a/b/c?x=1", true},
		"exact path":                {"ws://h/live", "ws://h/live", true},
		"exact path with query":     {"ws://h/live", "ws://h/live?x=1", true},
		"exact path trailing slash": {"ws://h/live", "ws://h/live/", false},
		"exact path longer":         {"ws://h/live", "ws://h/live/x", false},
		"exact path prefix trick":   {"ws://h/live", "ws://h/liveevil", false},
		"exact root":                {"ws://h/", "ws://h/", true},
		"exact root empty path":     {"ws://h/", "ws://h", true},
		"exact root other":          {"ws://h/", "ws://h/x", false},
		"prefix":                    {"ws://h/live/*", "ws://h/live/x/y", true},
		"prefix itself":             {"ws://h/live/*", "ws://h/live/", true},
		"prefix without slash":      {"ws://h/live/*", "ws://h/live", false},
		"prefix other":              {"ws://h/live/*", "ws://h/admin", false},
		"prefix no slash pattern":   {"ws://h/live*", "ws://h/lively", true},
		"root prefix":               {"ws://localhost:*/*", "ws://localhost:9/x", true},
		"root prefix empty path":    {"ws://localhost:*/*", "ws://localhost:9", true},
		"decoded path":              {"ws://h/live/*", "ws://h/%6Cive/x", true},
		"query ignored":             {"ws://h/a", "ws://h/a?b=/c", true},
		"ipv6":                      {"ws://[::1]:9000", "ws://[::1]:9000/", true},
		"ipv6 canonical":            {"ws://[0:0::1]:*", "ws://[::1]:9/", true},
		"ipv6 any port default":     {"ws://[::1]", "ws://[::1]/", true},
		"ipv6 other":                {"ws://[::1]:*", "ws://[::2]:9/", false},
		"ipv6 vs ipv4":              {"ws://[::1]:*", "ws://127.0.0.1:9/", false},
		"dev localhost":             {"ws://localhost:*", "ws://localhost:8080/echo", true},
		"dev not other host":        {"ws://localhost:*", "ws://localhost.evil.com:8080/", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := ParseTargetPattern(tc.pattern)
			if err != nil {
				t.Fatalf("ParseTargetPattern(%q): %v", tc.pattern, err)
			}
			u, err := ParseTarget(tc.target)
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.target, err)
			}
			if got := p.Match(u); got != tc.want {
				t.Errorf("%q.Match(%q) = %v, want %v", tc.pattern, tc.target, got, tc.want)
			}
		})
	}
}

func TestTargetPatternZero(t *testing.T) {
	var p TargetPattern
	u, err := url.Parse("ws://h/")
	if err != nil {
		t.Fatal(err)
	}
	if p.Match(u) || p.Match(nil) {
		t.Error("zero TargetPattern matched")
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"ws://example.com/x",
		"WSS://API.Example.com:443/live?x=1",
		"ws://[::1]:9000/",
		"ws://h/a/%2e%2e/b",
		"ws://u:p@h/",
		"ws://h:99999/",
		"ws://h:/",
		"ws://h/a%2fb?q=%00",
		"http://h/",
		"ws://h/\xc2\xda",
		`ws://h/"a"<b>?c=|d|`,
		"ws://h/a%2F%2e%2E%2fb",
	} {
		f.Add(s)
	}
	p, err := ParseTargetPattern("ws://*:*/*")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseTarget(raw)
		if err != nil {
			return
		}
		s := u.String()
		u2, err := ParseTarget(s)
		if err != nil {
			t.Fatalf("ParseTarget(%q) accepted, but its String %q is refused: %v", raw, s, err)
		}
		if s2 := u2.String(); s2 != s {
			t.Fatalf("ParseTarget(%q) = %q, reparsed as %q", raw, s, s2)
		}
		if u.Scheme == "ws" && !p.Match(u) {
			t.Fatalf("ws://*:*/* does not match %q", s)
		}
		if checkPathForms(u) != nil || strings.ContainsAny(u.Path, ";\x00") {
			t.Fatalf("ParseTarget(%q) accepted a refused path form: %q", raw, u.EscapedPath())
		}
	})
}

// TestTargetPathForms checks, against the pattern "/live/*", the path
// forms that servers (Tomcat, Spring, Jetty) or proxies that decode
// twice read as another path: each is refused, with the rule in its
// message, and the plain paths beside them still match.
func TestTargetPathForms(t *testing.T) {
	p, err := ParseTargetPattern("ws://host:8080/live/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, errHas string }{
		{"/live/..;/admin", "';'"},
		{"/live/%2e%2e;/admin", "percent-encoded dot"},
		{"/live/%252e%252e/admin", "double percent-encoding"},
		{"/live/a%00b", "control character or NUL"},
		{"/live/;jsessionid=x", "';'"},
		{"/live/a;b/c", "';'"},
		{"/live/a%3bb", "';'"},
		{"/live/%2E%2E/admin", "dot segments"},
		{"/live/.%2e/admin", "dot segments"},
		{"/live/a%2eb", "percent-encoded dot"},
		{"/live/a%2Fb", "percent-encoded dot, slash"},
		{"/live/a%5cb", "backslash"},
		{"/live/a%5C..%5Cadmin", "dot segments"},
		{`/live/a\b`, "backslash"},
		{"/live/%2541", "double percent-encoding"},
		{"/live/%25%32%65", "double percent-encoding"},
		{"/live/%25%32%45%25%32%45/admin", "double percent-encoding"},
		{"/live/%0a", "control character"},
		{"/live/%1f", "control character"},
		{"/live/%7f", "control character"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			u, err := ParseTarget("ws://host:8080" + tc.path)
			if err == nil {
				t.Fatalf("accepted as %q (pattern match: %v)", u, p.Match(u))
			}
			if !errors.Is(err, ErrInvalidTarget) || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %q: want ErrInvalidTarget mentioning %q", err, tc.errHas)
			}
		})
	}
	for _, path := range []string{"/live/feed", "/live/a%20b", "/live/100%25", "/live/%25zz", "/live/a.b/c", "/live/x?q=a;b%00"} {
		u, err := ParseTarget("ws://host:8080" + path)
		if err != nil || !p.Match(u) {
			t.Errorf("%s: %v, match %v; want accepted and matching", path, err, err == nil && p.Match(u))
		}
	}
}
