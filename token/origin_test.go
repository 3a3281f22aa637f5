package token

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOriginPatternMatch(t *testing.T) {
	tests := map[string]struct {
		pattern string
		origin  string
		want    bool
	}{
		"star any":                 {"*", "https://x.test", true},
		"star absent":              {"*", "", true},
		"star null":                {"*", "null", true},
		"exact":                    {"https://app.example.com", "https://app.example.com", true},
		"exact host case":          {"https://app.example.com", "https://APP.Example.com", true},
		"exact scheme case":        {"https://app.example.com", "HTTPS://app.example.com", true},
		"pattern case":             {"HTTPS://App.Example.com", "https://app.example.com", true},
		"pattern trailing slash":   {"https://app.example.com/", "https://app.example.com", true},
		"origin trailing slash":    {"https://app.example.com", "https://app.example.com/", true},
		"exact other host":         {"https://app.example.com", "https://evil.com", false},
		"exact scheme mismatch":    {"https://app.example.com", "http://app.example.com", false},
		"default port explicit":    {"https://app.example.com", "https://app.example.com:443", true},
		"pattern 443 origin none":  {"https://app.example.com:443", "https://app.example.com", true},
		"http default 80":          {"http://h", "http://h:80", true},
		"http 80 vs none":          {"http://h:80", "http://h", true},
		"default is not any":       {"https://h", "https://h:8443", false},
		"https default is not 80":  {"https://h", "https://h:80", false},
		"explicit port":            {"http://localhost:3000", "http://localhost:3000", true},
		"explicit port mismatch":   {"http://localhost:3000", "http://localhost:3001", false},
		"explicit port vs default": {"http://localhost:3000", "http://localhost", false},
		"any port":                 {"http://localhost:*", "http://localhost:5173", true},
		"any port default":         {"http://localhost:*", "http://localhost", true},
		"subdomain":                {"https://*.example.com", "https://a.example.com", true},
		"deep subdomain":           {"https://*.example.com", "https://a.b.example.com", true},
		"subdomain not bare":       {"https://*.example.com", "https://example.com", false},
		"subdomain suffix trick":   {"https://*.example.com", "https://evilexample.com", false},
		"subdomain other scheme":   {"https://*.example.com", "http://a.example.com", false},
		"subdomain with port":      {"https://*.example.com:*", "https://a.example.com:8443", true},
		"any host":                 {"https://*", "https://anything.test", true},
		"any host not other port":  {"https://*", "https://anything.test:8443", false},
		"null not by exact":        {"https://app.example.com", "null", false},
		"null not by any host":     {"https://*:*", "null", false},
		"absent not by exact":      {"https://app.example.com", "", false},
		"absent not by any host":   {"https://*:*", "", false},
		"origin with path":         {"https://app.example.com", "https://app.example.com/x", false},
		"origin with userinfo":     {"https://app.example.com", "https://u@app.example.com", false},
		"origin garbage":           {"https://app.example.com", "app.example.com", false},
		"origin bad port":          {"https://app.example.com", "https://app.example.com:x", false},
		"ipv6":                     {"http://[::1]:*", "http://[::1]:8080", true},
		"custom scheme":            {"chrome-extension://abcdef", "chrome-extension://abcdef", true},
		"custom scheme port":       {"chrome-extension://abcdef", "chrome-extension://abcdef:1", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := ParseOriginPattern(tc.pattern)
			if err != nil {
				t.Fatalf("ParseOriginPattern(%q): %v", tc.pattern, err)
			}
			if got := p.Match(tc.origin); got != tc.want {
				t.Errorf("%q.Match(%q) = %v, want %v", tc.pattern, tc.origin, got, tc.want)
			}
		})
	}
}

func TestParseOriginPatternErrors(t *testing.T) {
	tests := map[string]struct {
		pattern string
		errHas  string
	}{
		"null":          {"null", "null origin"},
		"empty":         {"", "want"},
		"no scheme":     {"app.example.com", "want"},
		"bad scheme":    {"1http://h", "want"},
		"path":          {"https://h/x", "path"},
		"query":         {"https://h?x", "query"},
		"userinfo":      {"https://u@h", "userinfo"},
		"empty host":    {"https://", "host"},
		"bad port":      {"https://h:70000", "port"},
		"empty port":    {"https://h:", "port"},
		"star in label": {"https://a*.example.com", "host"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseOriginPattern(tc.pattern)
			if err == nil {
				t.Fatalf("ParseOriginPattern(%q) succeeded, want error", tc.pattern)
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not mention %q", err, tc.errHas)
			}
		})
	}
}

func TestOriginOf(t *testing.T) {
	tests := map[string]struct {
		origin, referer string
		want            string
	}{
		"origin":                {origin: "https://app.example.com", want: "https://app.example.com"},
		"origin wins":           {origin: "https://a.test", referer: "https://b.test/x", want: "https://a.test"},
		"null origin":           {origin: "null", referer: "https://b.test/x", want: "null"},
		"referer fallback":      {referer: "https://app.example.com/page?x=1#y", want: "https://app.example.com"},
		"referer with port":     {referer: "http://localhost:3000/a/b", want: "http://localhost:3000"},
		"referer scheme case":   {referer: "HTTPS://App.test/", want: "https://App.test"},
		"referer userinfo drop": {referer: "https://u:p@app.test/", want: "https://app.test"},
		"referer relative":      {referer: "/just/a/path", want: ""},
		"referer garbage":       {referer: "%zz", want: ""},
		"neither":               {want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://router.test/create", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.referer != "" {
				r.Header.Set("Referer", tc.referer)
			}
			if got := OriginOf(r); got != tc.want {
				t.Errorf("OriginOf = %q, want %q", got, tc.want)
			}
		})
	}
}
