package testenv

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fetchTimeout bounds one Fetch, the answer's body included.
const fetchTimeout = 30 * time.Second

// Answer is one HTTP response of the router or the relay, read whole.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Fetch sends one request (body may be nil; hdr is added to the
// request's headers, a "Host" entry as its Host) and reads the whole
// answer.
func Fetch(t testing.TB, c *http.Client, method, u string, body io.Reader, hdr http.Header) Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" && len(v) == 1 {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// CheckHeaders asserts the headers every answer carries: no sniffing,
// no caching, and CORS open to any origin.
func CheckHeaders(t testing.TB, a Answer) {
	t.Helper()
	for k, v := range map[string]string{
		"X-Content-Type-Options":      "nosniff",
		"Cache-Control":               "no-store",
		"Access-Control-Allow-Origin": "*",
	} {
		if got := a.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

// Outcome is what every answer object says: ok, and for an error its
// code word and message.
type Outcome struct {
	OK    *bool  `json:"ok"`
	Error string `json:"error"`
	Code  string `json:"code"`
}

// DecodeAnswer checks the headers, status and content type of a JSON
// (cb == "") or JSONP answer (a call of cb), decodes its object into v
// (unless v is nil) and returns its outcome, which must have ok.
func DecodeAnswer(t testing.TB, a Answer, cb string, status int, v any) Outcome {
	t.Helper()
	CheckHeaders(t, a)
	body := string(a.Body)
	if a.Status != status {
		t.Fatalf("status %d, want %d; body %s", a.Status, status, body)
	}
	ct := a.Header.Get("Content-Type")
	if cb == "" {
		if ct != "application/json" {
			t.Fatalf("Content-Type %q, want application/json; body %s", ct, body)
		}
	} else {
		if ct != "application/javascript; charset=utf-8" {
			t.Fatalf("Content-Type %q, want application/javascript; body %s", ct, body)
		}
		pre, suf := "/**/"+cb+"(", ");"
		if !strings.HasPrefix(body, pre) || !strings.HasSuffix(body, suf) {
			t.Fatalf("body %q is not a call of %s", body, cb)
		}
		body = body[len(pre) : len(body)-len(suf)]
	}
	var o Outcome
	if err := json.Unmarshal([]byte(body), &o); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
	}
	if o.OK == nil {
		t.Fatalf("body %q has no ok", body)
	}
	return o
}

// CheckAnswer asserts an answer as DecodeAnswer does, and its outcome:
// ok:true when code is "", else ok:false with the error word code and a
// message.
func CheckAnswer(t testing.TB, a Answer, cb string, status int, code string, v any) {
	t.Helper()
	o := DecodeAnswer(t, a, cb, status, v)
	if code == "" {
		if !*o.OK {
			t.Fatalf("answer %s, want ok:true", a.Body)
		}
		return
	}
	if *o.OK || o.Code != code || o.Error == "" {
		t.Fatalf("answer %s, want ok:false with code %q and a message", a.Body, code)
	}
}

// CheckBadCallback asserts the plain-text 400 of an invalid callback,
// which must not reflect it.
func CheckBadCallback(t testing.TB, a Answer, cb string) {
	t.Helper()
	CheckHeaders(t, a)
	if a.Status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400; body %s", a.Status, a.Body)
	}
	if ct := a.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type %q, want text/plain; charset=utf-8", ct)
	}
	if cb != "" && strings.Contains(string(a.Body), cb) {
		t.Fatalf("body %q reflects the callback %q", a.Body, cb)
	}
}
