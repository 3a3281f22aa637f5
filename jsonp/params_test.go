package jsonp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name     string
		method   string
		query    string
		ctype    string
		body     string
		maxBody  int64
		want     Params
		wantErr  string // substring of a *ParamError; "" means no error
		tooLarge bool
	}{
		{name: "query", method: "GET", query: "a=1&b=x+y&c=%E2%82%AC", want: Params{"a": "1", "b": "x y", "c": "€"}},
		{name: "empty value and no equals", method: "GET", query: "a=&b", want: Params{"a": "", "b": ""}},
		{name: "empty pairs skipped", method: "GET", query: "&&a=1&", want: Params{"a": "1"}},
		{name: "GET body ignored", method: "GET", query: "a=1", ctype: form, body: "a=2", want: Params{"a": "1"}},
		{name: "form body", method: "POST", query: "cb=f", ctype: form, body: "d=hello%20world&t=t", want: Params{"cb": "f", "d": "hello world", "t": "t"}},
		{name: "form body with charset", method: "POST", ctype: form + "; charset=UTF-8", body: "d=x", want: Params{"d": "x"}},
		{name: "text/plain body", method: "POST", ctype: "text/plain", body: "d=a%2Bb&t=t", want: Params{"d": "a+b", "t": "t"}},
		{name: "text/plain with charset", method: "POST", ctype: "text/plain;charset=UTF-8", body: "d=1", want: Params{"d": "1"}},
		{name: "no content type", method: "POST", body: "d=1", want: Params{"d": "1"}},
		{name: "body at limit", method: "POST", ctype: form, body: "d=12345", maxBody: 7, want: Params{"d": "12345"}},
		{name: "duplicate in query", method: "GET", query: "a=1&a=2", wantErr: "a: given more than once"},
		{name: "duplicate in query same value", method: "GET", query: "a=1&a=1", wantErr: "given more than once"},
		{name: "duplicate escaped name", method: "GET", query: "a=1&%61=2", wantErr: "given more than once"},
		{name: "duplicate in body", method: "POST", ctype: form, body: "d=1&d=2", wantErr: "given more than once"},
		{name: "duplicate across query and body", method: "POST", query: "d=1", ctype: form, body: "d=2", wantErr: "d: given more than once"},
		{name: "unsupported content type", method: "POST", ctype: "application/json", body: `{"d":1}`, wantErr: "unsupported content type"},
		{name: "multipart refused", method: "POST", ctype: "multipart/form-data; boundary=x", body: "--x--", wantErr: "unsupported content type"},
		{name: "malformed content type", method: "POST", ctype: "text/plain; ;;=", body: "d=1", wantErr: "unsupported content type"},
		{name: "body over limit", method: "POST", ctype: form, body: "d=123456", maxBody: 7, tooLarge: true},
		{name: "bad percent-encoding value", method: "GET", query: "d=%zz", wantErr: "malformed percent-encoding"},
		{name: "truncated percent-encoding", method: "GET", query: "d=%F", wantErr: "malformed percent-encoding"},
		{name: "bad percent-encoding name", method: "GET", query: "%zz=1", wantErr: "malformed"},
		{name: "bad percent-encoding body", method: "POST", ctype: "text/plain", body: "d=%", wantErr: "malformed percent-encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := "/x"
			if tt.query != "" {
				target += "?" + tt.query
			}
			r := httptest.NewRequest(tt.method, target, strings.NewReader(tt.body))
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			max := tt.maxBody
			if max == 0 {
				max = 1 << 20
			}
			got, err := Parse(r, max)
			var pe *ParamError
			switch {
			case tt.tooLarge:
				if !errors.Is(err, ErrBodyTooLarge) {
					t.Fatalf("err = %v, want ErrBodyTooLarge", err)
				}
			case tt.wantErr != "":
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a *ParamError containing %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			case !reflect.DeepEqual(got, tt.want):
				t.Fatalf("params = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParamsCallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p      Params
		wantCB string
		wantOK bool
	}{
		{Params{}, "", true},
		{Params{"cb": "f.g"}, "f.g", true},
		{Params{"cb": ""}, "", false},
		{Params{"cb": "alert(1)"}, "alert(1)", false},
		{nil, "", true},
	}
	for _, tt := range tests {
		cb, ok := tt.p.Callback()
		if ok != tt.wantOK || (ok && cb != tt.wantCB) {
			t.Errorf("%v.Callback() = %q, %v; want %q, %v", tt.p, cb, ok, tt.wantCB, tt.wantOK)
		}
	}
}

func TestParamsInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		val      string
		present  bool
		want     int64
		wantErr  bool
		min, max int64
	}{
		{present: false},
		{val: "0", present: true, want: 0},
		{val: "42", present: true, want: 42},
		{val: "9", present: true, wantErr: true, min: 10, max: 20},
		{val: "21", present: true, wantErr: true, min: 10, max: 20},
		{val: "", present: true, wantErr: true},
		{val: "abc", present: true, wantErr: true},
		{val: "1.5", present: true, wantErr: true},
		{val: "-1", present: true, wantErr: true},
		{val: "+1", present: true, wantErr: true},
		{val: " 1", present: true, wantErr: true},
		{val: "0x10", present: true, wantErr: true},
		{val: "1e3", present: true, wantErr: true},
		{val: "99999999999999999999", present: true, wantErr: true},
	}
	for _, tt := range tests {
		p := Params{}
		if tt.present {
			p["n"] = tt.val
		}
		max := tt.max
		if max == 0 {
			max = 1 << 53
		}
		v, present, err := p.Int("n", tt.min, max)
		var pe *ParamError
		if present != tt.present || (err != nil) != tt.wantErr || (err != nil && !errors.As(err, &pe)) || (err == nil && v != tt.want) {
			t.Errorf("Int(%q) = %d, %v, %v; want %d, %v, error %v", tt.val, v, present, err, tt.want, tt.present, tt.wantErr)
		}
	}
}

// TestParseReadsQueryOnlyForGET checks a GET with a body does not consume
// it (a GET body is not a parameter source).
func TestParseReadsQueryOnlyForGET(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/x?a=1", strings.NewReader("b=2"))
	p, err := Parse(r, 10)
	if err != nil || len(p) != 1 || p["a"] != "1" {
		t.Fatalf("Parse = %v, %v", p, err)
	}
}

// TestParseKeepsCallbackOnError checks that a bad request still yields
// its callback, so the error reaches it, and that a callback that is
// itself ambiguous is reported invalid rather than picked.
func TestParseKeepsCallbackOnError(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name   string
		method string
		query  string
		ctype  string
		body   string
		wantCB string
		wantOK bool
	}{
		{"duplicate before cb", "GET", "a=1&a=2&cb=f", "", "", "f", true},
		{"malformed before cb", "GET", "a=%zz&cb=f", "", "", "f", true},
		{"malformed name before cb", "GET", "%zz=1&cb=f", "", "", "f", true},
		{"cb twice", "GET", "cb=f&cb=g", "", "", "", false},
		{"cb three times", "GET", "cb=f&cb=g&cb=h", "", "", "", false},
		{"cb malformed", "GET", "cb=f%zz", "", "", "", false},
		{"cb in query and body", "POST", "cb=f", form, "cb=f", "", false},
		{"body too large", "POST", "cb=f", form, strings.Repeat("x", 100), "f", true},
		{"unsupported content type", "POST", "cb=f", "application/json", "{}", "f", true},
		{"duplicate across query and body", "POST", "cb=f&d=1", form, "d=2", "f", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "/x?"+tt.query, strings.NewReader(tt.body))
		if tt.ctype != "" {
			r.Header.Set("Content-Type", tt.ctype)
		}
		p, err := Parse(r, 10)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		cb, ok := p.Callback()
		if ok != tt.wantOK || (ok && cb != tt.wantCB) {
			t.Errorf("%s: Callback() = %q, %v; want %q, %v", tt.name, cb, ok, tt.wantCB, tt.wantOK)
		}
	}
}
