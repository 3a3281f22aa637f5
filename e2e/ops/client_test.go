package ops

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/polysocket/polysocket/internal/proctest"
)

// TestClientServed checks that the binary serves the minified library at
// the hashed URL the manifest names, immutable and gzipped, with the SRI
// hash the manifest gives, and at /polysocket.js with a short cache.
func TestClientServed(t *testing.T) {
	p := startProc(t, proctest.Options{}, "both", "--echo=false")
	get := func(path string, gz bool) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, p.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if gz {
			// Set by hand, the transport leaves the body encoded.
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := p.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, %v", path, resp.StatusCode, err)
		}
		return resp, b
	}
	_, b := get("/polysocket.json", false)
	var man struct{ Src, Integrity string }
	if err := json.Unmarshal(b, &man); err != nil || man.Src == "" {
		t.Fatalf("manifest %s: %v", b, err)
	}
	resp, b := get(man.Src, true)
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("%s headers %v", man.Src, resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	js, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum384(js)
	if got := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); got != man.Integrity {
		t.Errorf("integrity of %s is %s, manifest says %s", man.Src, got, man.Integrity)
	}
	resp, plain := get("/polysocket.js", false)
	if !bytes.Equal(plain, js) || resp.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Errorf("/polysocket.js: %d bytes (want the %d of the build), Cache-Control %q", len(plain), len(js), resp.Header.Get("Cache-Control"))
	}
}
