// Package client embeds polysocket.js, the browser library, and serves it.
//
// The library itself is ES3 JavaScript (it runs on IE6 and every later
// browser); es3_test.go parses it, and its minified build, and refuses
// anything newer. The router serves the minified build (see Library) at
// /polysocket.js with a short cache, at /polysocket.{hash}.js as an
// immutable file, and names the latter with its SRI hash at
// /polysocket.json.
//
// The build is minified in process, once, when the router starts, rather
// than at build time: the source in this directory is the only copy, so
// a binary can never serve a stale build and nobody has to regenerate a
// checked-in file.
package client

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	_ "embed"

	"github.com/tdewolff/minify/v2"
	"github.com/tdewolff/minify/v2/js"
)

//go:embed polysocket.js
var source []byte

// Source returns a copy of polysocket.js as written (unminified), as
// embedded in the binary.
func Source() []byte {
	return append([]byte(nil), source...)
}

// Cache lifetimes: the short URL is revalidated often so pages pick up a
// new build; the hashed URL never changes content.
const (
	shortCache     = "public, max-age=300"
	immutableCache = "public, max-age=31536000, immutable"
)

// Library is the minified build of polysocket.js with what serving it
// needs: its gzip encoding, its hashed file name and its SRI hash. It is
// an http.Handler: the hashed path is served as immutable, /polysocket.json
// as the manifest, and any other path (the handler is mounted at
// /polysocket.js) as the build with a short cache.
type Library struct {
	min, gz   []byte
	path      string // /polysocket.{hash}.js
	integrity string // sha384-{base64}
	etag      string // strong tag of the identity encoding
	etagGz    string // and of the gzip encoding
	manifest  []byte
}

// New minifies the embedded library and prepares it for serving.
func New() (*Library, error) {
	m := minify.New()
	// KeepVarNames off: local names are renamed, properties never are,
	// so the page-visible API and the JSONP callback paths stay.
	var min bytes.Buffer
	if err := (&js.Minifier{}).Minify(m, &min, bytes.NewReader(source), nil); err != nil {
		return nil, fmt.Errorf("client: minifying polysocket.js: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	_, _ = zw.Write(min.Bytes()) // a bytes.Buffer never fails
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(min.Bytes())
	hash := hex.EncodeToString(sum[:8])
	sri := sha512.Sum384(min.Bytes())
	l := &Library{
		min:       min.Bytes(),
		gz:        gz.Bytes(),
		path:      "/polysocket." + hash + ".js",
		integrity: "sha384-" + base64.StdEncoding.EncodeToString(sri[:]),
		etag:      `"` + hash + `"`,
		etagGz:    `"` + hash + `-gz"`,
	}
	l.manifest, err = json.Marshal(map[string]string{"src": l.path, "integrity": l.integrity})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Handler returns the Library for code that only mounts /polysocket.js.
// It panics if the embedded library does not minify, which the package's
// tests rule out for every build.
func Handler() http.Handler {
	l, err := New()
	if err != nil {
		panic(err)
	}
	return l
}

// Mount registers the short URL, the hashed URL and the manifest on mux.
func (l *Library) Mount(mux *http.ServeMux) {
	mux.Handle("/polysocket.js", l)
	mux.Handle(l.path, l)
	mux.Handle("/polysocket.json", l)
}

// Path is the hashed URL path of the build, /polysocket.{hash}.js.
func (l *Library) Path() string { return l.path }

// Integrity is the build's Subresource Integrity hash (sha384-…).
func (l *Library) Integrity() string { return l.integrity }

// Minified returns a copy of the minified build.
func (l *Library) Minified() []byte { return append([]byte(nil), l.min...) }

// Gzipped returns a copy of the build's gzip encoding.
func (l *Library) Gzipped() []byte { return append([]byte(nil), l.gz...) }

// ETag returns the strong entity tag of the identity-encoded build.
func (l *Library) ETag() string { return l.etag }

// ServeHTTP serves GET and HEAD with strong ETags, 304 answers to a
// matching If-None-Match and gzip to clients that accept it.
func (l *Library) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Pages on any origin load the library; CORS lets them use SRI.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == "/polysocket.json" {
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", shortCache)
		_, _ = w.Write(l.manifest)
		return
	}
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	if r.URL.Path == l.path {
		h.Set("Cache-Control", immutableCache)
	} else {
		h.Set("Cache-Control", shortCache)
	}
	h.Set("Vary", "Accept-Encoding")
	body, tag := l.min, l.etag
	if acceptsGzip(r.Header.Values("Accept-Encoding")) {
		body, tag = l.gz, l.etagGz
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", tag)
	if l.etagMatch(r.Header.Get("If-None-Match")) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	// ServeContent handles HEAD and Range; a zero modtime skips
	// Last-Modified, the ETag is the validator.
	http.ServeContent(w, r, "polysocket.js", time.Time{}, bytes.NewReader(body))
}

// etagMatch reports whether an If-None-Match header names one of our
// tags (weak comparison, as RFC 9110 asks for If-None-Match) or is "*".
// Either encoding's tag matches: both are the same build.
func (l *Library) etagMatch(header string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == l.etag || t == l.etagGz {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether Accept-Encoding values accept gzip: gzip
// (or x-gzip) named without q=0, or else * without q=0.
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			ok := !zeroQ(params)
			switch name {
			case "gzip", "x-gzip":
				return ok
			case "*":
				star = ok
			}
		}
	}
	return star
}

// zeroQ reports whether an Accept-Encoding item's parameters say q=0.
func zeroQ(params string) bool {
	q := strings.ReplaceAll(strings.ToLower(params), " ", "")
	return strings.HasPrefix(q, "q=0") && strings.Trim(q[3:], ".0") == ""
}
