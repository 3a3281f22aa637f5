package jsonp

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary query strings and bodies to Parse: it must
// not panic, must return parameters even on error, may only return a
// callback that ValidCallback accepts, must refuse a body over the limit,
// and what it accepts must survive re-encoding.
func FuzzParse(f *testing.F) {
	f.Add("cb=f&t=t&d=hi&n=1", "", false, "")
	f.Add("cb=a.b", "t=b&d=AAEC&n=2&f=1", true, "application/x-www-form-urlencoded")
	f.Add("", "d=%E2%80%A8&t=t", true, "text/plain; charset=utf-8")
	f.Add("a=1&a=2&cb=x", "", false, "")
	f.Add("cb=%zz&cb=y", "cb=z", true, "")
	f.Add("=&&&=x&%", "d", true, "multipart/form-data")
	f.Add("t=t", "t=t", true, "text/plain")
	const maxBody = 256
	f.Fuzz(func(t *testing.T, query, body string, post bool, ctype string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/s/x", RawQuery: query}, Header: http.Header{}}
		if post {
			r.Method = http.MethodPost
			r.Body = io.NopCloser(strings.NewReader(body))
			if ctype != "" {
				r.Header.Set("Content-Type", ctype)
			}
		}
		p, err := Parse(r, maxBody)
		if p == nil {
			t.Fatalf("Parse returned nil params (err %v)", err)
		}
		if cb, ok := p.Callback(); ok && cb != "" && !ValidCallback(cb) {
			t.Fatalf("Callback accepted %q", cb)
		}
		if err == nil && post && len(body) > maxBody {
			t.Fatalf("a %d-byte body was accepted over the %d-byte limit", len(body), maxBody)
		}
		if err != nil {
			return
		}
		// Accepted parameters re-encode to the same parameters.
		v := url.Values{}
		for k, s := range p {
			v.Set(k, s)
		}
		r2 := &http.Request{Method: http.MethodGet, URL: &url.URL{RawQuery: v.Encode()}, Header: http.Header{}}
		p2, err := Parse(r2, maxBody)
		if err != nil {
			t.Fatalf("re-encoded %q refused: %v", v.Encode(), err)
		}
		if len(p2) != len(p) {
			t.Fatalf("re-encoding changed the parameters: %q → %q", p, p2)
		}
		for k, s := range p {
			if p2[k] != s {
				t.Fatalf("re-encoding changed %q: %q → %q", k, s, p2[k])
			}
		}
	})
}

// callbackRE is the protocol's callback grammar, as an independent
// oracle for ValidCallback.
var callbackRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`)

// FuzzValidCallback checks ValidCallback against the grammar, and that
// an accepted name never carries anything that could break out of the
// script it is written into.
func FuzzValidCallback(f *testing.F) {
	for _, s := range []string{"f", "a.b.c", "$_1", "jQuery123_456", "a..b", ".a", "a.", "1a", "a-b", "alert(1)//", "a\u2028", strings.Repeat("a", 129), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cb string) {
		got := ValidCallback(cb)
		want := len(cb) <= MaxCallbackLen && callbackRE.MatchString(cb)
		if got != want {
			t.Fatalf("ValidCallback(%q) = %v, grammar says %v", cb, got, want)
		}
		if got && strings.ContainsAny(cb, "()<>;/\\\"'`\n\r \t") {
			t.Fatalf("ValidCallback accepted %q", cb)
		}
	})
}

// FuzzParseKnown feeds arbitrary queries and bodies to a parse limited to
// a few names: it must not panic, may only keep those names (so a map
// never grows past them), must refuse a list naming any other, and what
// it accepts must be what url.ParseQuery reads.
func FuzzParseKnown(f *testing.F) {
	for _, seed := range [][2]string{ // query, and a body when not ""
		{"cb=f&t=t&d=hi&n=1", ""}, {"t=t", "d=x&_=1"}, {"0=&1=&2=&3=", ""}, {"t=t&x=1&cb=f", ""},
		{"%74=t&%64=", "cb=a.b"}, {"t=t", "t=b"}, {"=&&cb=%zz", "d=%"},
	} {
		f.Add(seed[0], seed[1], seed[1] != "")
	}
	known := Names{"t", "d", "n", "f", "cb", "_"}
	f.Fuzz(func(t *testing.T, query, body string, post bool) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/s/x", RawQuery: query}, Header: http.Header{}}
		if post {
			r.Method = http.MethodPost
			r.Body = io.NopCloser(strings.NewReader(body))
		}
		p := make(Params)
		err := ParseInto(p, r, 1<<10, known)
		for k := range p {
			if !known.has(k) {
				t.Fatalf("kept unknown name %q", k)
			}
		}
		if err != nil {
			return
		}
		for _, list := range []string{query, body} {
			if (list == body && !post) || strings.Contains(list, ";") {
				continue // no body; url.ParseQuery refuses every ";"
			}
			v, perr := url.ParseQuery(list)
			if perr != nil {
				t.Fatalf("accepted %q, which url.ParseQuery refuses: %v", list, perr)
			}
			for k, vs := range v {
				if !known.has(k) || len(vs) != 1 || p[k] != vs[0] {
					t.Fatalf("list %q: %q = %q, parsed %q", list, k, vs, p[k])
				}
			}
		}
	})
}
