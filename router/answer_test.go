package router_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// answer is one HTTP response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// reply is the object of a /create answer, success or error.
type reply struct {
	OK       *bool  `json:"ok"`
	FQDN     string `json:"fqdn"`
	Socket   string `json:"socket"`
	Protocol string `json:"protocol"`
	Error    string `json:"error"`
	Code     string `json:"code"`
}

// newClient returns an HTTP client whose idle connections are closed at
// cleanup, so no transport goroutine outlives the test.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// do sends one request and reads the whole answer.
func do(t *testing.T, c *http.Client, method, u string, hdr http.Header) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
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
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// checkCommon asserts the headers every answer carries.
func checkCommon(t *testing.T, a answer) {
	t.Helper()
	for k, v := range map[string]string{
		"X-Content-Type-Options":      "nosniff",
		"Cache-Control":               "no-store",
		"Access-Control-Allow-Origin": "*",
	} {
		if got := a.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

// decode checks the status and content type of a JSON (cb == "") or
// JSONP answer and decodes its object.
func decode(t *testing.T, a answer, cb string, status int) reply {
	t.Helper()
	checkCommon(t, a)
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.body)
	}
	body := string(a.body)
	ct := a.header.Get("Content-Type")
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
	var r reply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if r.OK == nil {
		t.Fatalf("body %q has no ok", body)
	}
	return r
}

// checkError asserts an error answer with the error word code.
func checkError(t *testing.T, a answer, cb string, status int, code string) {
	t.Helper()
	r := decode(t, a, cb, status)
	if *r.OK || r.Code != code || r.Error == "" {
		t.Fatalf("answer %s, want ok:false with code %q and a message", a.body, code)
	}
}

// checkBadCallback asserts the plain-text 400 of an invalid callback,
// which must not reflect it.
func checkBadCallback(t *testing.T, a answer, cb string) {
	t.Helper()
	checkCommon(t, a)
	if a.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400; body %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type %q, want text/plain; charset=utf-8", ct)
	}
	if cb != "" && strings.Contains(string(a.body), cb) {
		t.Fatalf("body %q reflects the callback %q", a.body, cb)
	}
}
