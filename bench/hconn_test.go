package bench

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHconn checks the minimal client against net/http's server:
// Content-Length and chunked bodies, keep-alive, and Connection: close.
func TestHconn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			_, _ = w.Write([]byte("part one,"))
			_ = http.NewResponseController(w).Flush()
			_, _ = w.Write([]byte("part two"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte("bye"))
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(r.URL.RawQuery))
		}
	}))
	defer srv.Close()
	h := newHconn("http", strings.TrimPrefix(srv.URL, "http://"))
	defer h.close()
	ctx := context.Background()
	var body bytes.Buffer
	for _, c := range []struct {
		path   string
		status int
		body   string
		open   bool
	}{
		{"/a?x=1", 201, "x=1", true},
		{"/chunked", 200, "part one,part two", true},
		{"/b?y=2", 201, "y=2", true},
		{"/close", 403, "bye", false},
		{"/c?z=3", 201, "z=3", true},
	} {
		st, err := h.get(ctx, c.path, 5*time.Second, &body)
		if err != nil || st != c.status || body.String() != c.body {
			t.Fatalf("%s: %d %q %v; want %d %q", c.path, st, body.String(), err, c.status, c.body)
		}
		if open := h.c != nil; open != c.open {
			t.Fatalf("%s: connection open %v, want %v", c.path, open, c.open)
		}
	}
}
