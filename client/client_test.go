package client

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	do := func(method string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+"/polysocket.js", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	resp, body := do(http.MethodGet, nil)
	want := map[string]string{
		"Content-Type":           "application/javascript; charset=utf-8",
		"Cache-Control":          "public, max-age=300",
		"X-Content-Type-Options": "nosniff",
		"ETag":                   ETag(),
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, Source()) {
		t.Errorf("GET: status %d, %d bytes; want 200 and the library", resp.StatusCode, len(body))
	}
	if e := ETag(); len(e) < 10 || e[0] != '"' || e[1] == 'W' {
		t.Errorf("ETag %q is not a strong tag", e)
	}

	tests := []struct {
		name   string
		method string
		hdr    map[string]string
		status int
		empty  bool
	}{
		{"head", http.MethodHead, nil, http.StatusOK, true},
		{"match", http.MethodGet, map[string]string{"If-None-Match": ETag()}, http.StatusNotModified, true},
		{"match in list", http.MethodGet, map[string]string{"If-None-Match": `"x", ` + ETag()}, http.StatusNotModified, true},
		{"stale", http.MethodGet, map[string]string{"If-None-Match": `"old"`}, http.StatusOK, false},
		{"post", http.MethodPost, nil, http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(tt.method, tt.hdr)
			if resp.StatusCode != tt.status || (len(body) == 0) != tt.empty {
				t.Errorf("status %d with %d bytes, want %d (empty %v)", resp.StatusCode, len(body), tt.status, tt.empty)
			}
		})
	}
}
