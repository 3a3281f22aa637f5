package client

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

// gzipBudget is the most the gzipped build may weigh: SockJS's and
// Engine.IO's clients are several times that (README, "Client size").
const gzipBudget = 8 << 10

// newLibrary builds the Library or fails the test.
func newLibrary(t *testing.T) *Library {
	t.Helper()
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// get requests path from srv with the given headers; the transport never
// adds or undoes an encoding itself.
func get(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
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

func checkHeaders(t *testing.T, resp *http.Response, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestHandler(t *testing.T) {
	l := newLibrary(t)
	mux := http.NewServeMux()
	l.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	if !regexp.MustCompile(`^/polysocket\.[0-9a-f]{16}\.js$`).MatchString(l.Path()) {
		t.Fatalf("hashed path %q", l.Path())
	}
	for _, c := range []struct{ path, cache string }{
		{"/polysocket.js", "public, max-age=300"},
		{l.Path(), "public, max-age=31536000, immutable"},
	} {
		resp, body := get(t, srv, http.MethodGet, c.path, nil)
		checkHeaders(t, resp, map[string]string{
			"Content-Type":                "application/javascript; charset=utf-8",
			"Cache-Control":               c.cache,
			"X-Content-Type-Options":      "nosniff",
			"Access-Control-Allow-Origin": "*",
			"Vary":                        "Accept-Encoding",
			"Content-Encoding":            "",
			"ETag":                        l.ETag(),
		})
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, l.Minified()) {
			t.Errorf("GET %s: status %d, %d bytes; want 200 and the minified build", c.path, resp.StatusCode, len(body))
		}
		// The SRI hash is of the decoded body, so it holds for gzip too.
		resp, body = get(t, srv, http.MethodGet, c.path, map[string]string{"Accept-Encoding": "br, gzip"})
		checkHeaders(t, resp, map[string]string{"Content-Encoding": "gzip", "Cache-Control": c.cache})
		plain := gunzip(t, body)
		sum := sha512.Sum384(plain)
		if got := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); got != l.Integrity() || !bytes.Equal(plain, l.Minified()) {
			t.Errorf("gzip GET %s: integrity %s, want %s", c.path, got, l.Integrity())
		}
	}
	if resp, _ := get(t, srv, http.MethodGet, "/polysocket.0000000000000000.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another build's hash: status %d, want 404", resp.StatusCode)
	}

	resp, body := get(t, srv, http.MethodGet, "/polysocket.json", nil)
	var man struct{ Src, Integrity string }
	if err := json.Unmarshal(body, &man); err != nil || man.Src != l.Path() || man.Integrity != l.Integrity() {
		t.Errorf("manifest %s (%v), want src %s and integrity %s", body, err, l.Path(), l.Integrity())
	}
	checkHeaders(t, resp, map[string]string{"Content-Type": "application/json", "Access-Control-Allow-Origin": "*"})

	tests := []struct {
		name   string
		method string
		hdr    map[string]string
		status int
		empty  bool
	}{
		{"head", http.MethodHead, nil, http.StatusOK, true},
		{"match", http.MethodGet, map[string]string{"If-None-Match": l.ETag()}, http.StatusNotModified, true},
		{"match in list", http.MethodGet, map[string]string{"If-None-Match": `"x", ` + l.ETag()}, http.StatusNotModified, true},
		{"stale", http.MethodGet, map[string]string{"If-None-Match": `"old"`}, http.StatusOK, false},
		{"post", http.MethodPost, nil, http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, srv, tt.method, "/polysocket.js", tt.hdr)
			if resp.StatusCode != tt.status || (len(body) == 0) != tt.empty {
				t.Errorf("status %d with %d bytes, want %d (empty %v)", resp.StatusCode, len(body), tt.status, tt.empty)
			}
		})
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("bad gzip: %v", err)
	}
	return out
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, GZIP;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"x-gzip", true},
		{"*", true},
		{"*;q=1, gzip;q=0", false},
		{"br, identity", false},
		{"gzipped", false},
	}
	for _, tt := range tests {
		if got := acceptsGzip([]string{tt.header}); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

// TestSizeBudget keeps the served build small; the figures are the ones
// the README quotes.
func TestSizeBudget(t *testing.T) {
	l := newLibrary(t)
	t.Logf("polysocket.js: %d bytes raw, %d minified, %d gzipped", len(source), len(l.min), len(l.gz))
	if len(l.gz) > gzipBudget {
		t.Errorf("gzipped build is %d bytes, over the %d-byte budget", len(l.gz), gzipBudget)
	}
	if len(l.min) >= len(source)*3/4 {
		t.Errorf("minified %d bytes of %d: the minifier did little", len(l.min), len(source))
	}
}
