package metrics

import (
	"net/http"
	"strconv"
	"strings"
)

// endpoint is the endpoint label of an HTTP response.
type endpoint uint8

const (
	epCreate endpoint = iota
	epSend
	epClose
	epPoll
	epClient
	epMetrics
	epHealth
	epOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{"create", "send", "close", "poll", "client", "metrics", "health", "other"}

func (e endpoint) String() string { return endpointNames[e] }

// endpointOf classifies a request path without allocating.
func endpointOf(path string) endpoint {
	switch {
	case path == "/create":
		return epCreate
	case strings.HasPrefix(path, "/s/"):
		return epSend
	case strings.HasPrefix(path, "/c/"):
		return epClose
	case strings.HasPrefix(path, "/j/"):
		return epPoll
	case strings.HasPrefix(path, "/polysocket.") && (strings.HasSuffix(path, ".js") || path == "/polysocket.json"):
		return epClient
	case path == "/metrics":
		return epMetrics
	case path == "/healthz", path == "/readyz":
		return epHealth
	}
	return epOther
}

// Middleware counts h's responses by endpoint and status, and 413s as
// size-limit refusals. Each endpoint and status's counter is resolved on
// its first use and kept, and the response recorders are pooled, so a
// request costs no label lookup and no allocation.
func (m *Metrics) Middleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, _ := m.pool.Get().(*recorder)
		if rec == nil {
			rec = new(recorder)
		}
		*rec = recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK // the handler wrote nothing
		}
		rec.ResponseWriter = nil
		m.pool.Put(rec)
		m.countResponse(endpointOf(r.URL.Path), status)
	})
}

func (m *Metrics) countResponse(e endpoint, status int) {
	if status < 100 || status >= len(m.respBy[e]) {
		m.responses.WithLabelValues(e.String(), strconv.Itoa(status)).Inc()
	} else if c := m.respBy[e][status].Load(); c != nil {
		(*c).Inc()
	} else {
		c := m.responses.WithLabelValues(e.String(), strconv.Itoa(status))
		m.respBy[e][status].Store(&c)
		c.Inc()
	}
	if status == http.StatusRequestEntityTooLarge {
		m.limitBy[LimitSize].Inc()
	}
}

// recorder notes the status a handler answers with. It unwraps for
// http.NewResponseController (the relay flushes polls through it) and
// passes Flush on for handlers that assert http.Flusher.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	// 1xx answers are interim, except 101 (a WebSocket upgrade).
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap is for http.NewResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
