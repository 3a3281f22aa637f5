// Package client embeds polysocket.js, the browser library, and serves it.
//
// The library itself is ES3 JavaScript (it runs on IE6 and every later
// browser); es3_test.go parses it and refuses anything newer. The router
// mounts Handler at /polysocket.js.
package client

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	_ "embed"
)

//go:embed polysocket.js
var source []byte

// etag is a strong validator computed once: the file never changes while
// the binary runs.
var etag = func() string {
	sum := sha256.Sum256(source)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// Source returns a copy of polysocket.js as embedded in the binary.
func Source() []byte {
	return append([]byte(nil), source...)
}

// ETag returns the strong entity tag Handler sends for the library.
func ETag() string { return etag }

// Handler returns an http.Handler that serves polysocket.js for GET and
// HEAD on any path it is mounted at, with a strong ETag, a five-minute
// public cache lifetime and 304 answers to a matching If-None-Match.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=300")
	// Pages on any origin load the library; CORS lets them use SRI.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match")) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	// ServeContent handles HEAD and Range; a zero modtime skips
	// Last-Modified, the ETag is the validator.
	http.ServeContent(w, r, "polysocket.js", time.Time{}, strings.NewReader(string(source)))
}

// etagMatch reports whether an If-None-Match header names our ETag
// (weak comparison, as RFC 9110 asks for If-None-Match) or is "*".
func etagMatch(header string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
