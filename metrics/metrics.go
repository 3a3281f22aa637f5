// Package metrics exposes a polysocket process's Prometheus metrics: the
// relay's sessions and traffic, the router's creates, HTTP responses, bus
// errors and refusals by limit. Each process builds one Metrics on its own
// registry (never the global default one), hands its hooks to the relay
// and router, and serves Handler at /metrics.
//
// The data path stays cheap: every label value that a per-message event
// uses is resolved once, in New, so counting is a Counter.Add.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/session"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every polysocket metric.
const namespace = "polysocket"

// Limit names, the values of polysocket_limit_refusals_total's limit label.
const (
	LimitCapacity = "capacity" // the relay is full
	LimitToken    = "token"    // the token is at its connection limit
	LimitRate     = "rate"     // the client IP's /create rate
	LimitSize     = "size"     // a message or body over its size limit (413)
)

// Metrics holds a process's collectors. Create it with New; its methods
// may be called concurrently.
type Metrics struct {
	reg *prometheus.Registry

	created       prometheus.Counter
	ended         *prometheus.CounterVec
	endedBy       map[string]prometheus.Counter
	establish     *prometheus.HistogramVec
	messages      *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	pollsHeld     prometheus.Gauge
	pollSeconds   *prometheus.HistogramVec
	responses     *prometheus.CounterVec
	respBy        [numEndpoints][600]atomic.Pointer[prometheus.Counter] // by status, filled on first use
	busErrors     *prometheus.CounterVec
	limits        *prometheus.CounterVec
	limitBy       map[string]prometheus.Counter
	creates       *prometheus.CounterVec
	createSeconds *prometheus.HistogramVec
	draining      prometheus.Gauge

	pool sync.Pool // *recorder
}

// The end reasons, values of polysocket_sessions_ended_total's reason label.
var endReasons = []string{"client", "target_close", "target_lost", "too_large", "idle", "ping", "write_fail", "shutdown", "unknown"}

// New returns Metrics registered on a new registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	f := factory{reg}
	m.created = f.counter("sessions_created_total", "Sessions opened by the relay.")
	m.ended = f.counterVec("sessions_ended_total", "Sessions ended, by reason: client (closed by the client), target_close (the target closed), target_lost (the target vanished without a close, 1006), too_large (a target message over the limit, 1009), idle (no client request for the idle timeout), ping (the target missed a pong), write_fail (writing to the target failed), shutdown (drain or shutdown, 1001).", "reason")
	m.endedBy = make(map[string]prometheus.Counter, len(endReasons))
	for _, r := range endReasons {
		m.endedBy[r] = m.ended.WithLabelValues(r)
	}
	m.establish = f.histogramVec("establish_seconds", "Time a relay took to answer an establish request (target dial and WebSocket handshake), by result: ok or the error word.", "result")
	m.messages = f.counterVec("messages_total", "WebSocket messages through the relay, by direction: to_target (client sends, after fragment assembly) or from_target.", "direction")
	m.bytes = f.counterVec("message_bytes_total", "Payload bytes of messages through the relay, by direction (to_target, from_target).", "direction")
	m.pollsHeld = f.gauge("polls_held", "Long polls waiting for messages right now.")
	m.pollSeconds = f.histogramVecBuckets("poll_duration_seconds", "Time from a long poll's start on its session to its answer, held or not (not counting the write), by outcome: messages, heartbeat (nothing by the TTL), superseded (a newer poll took over), closed (the session is over), gone (the client went away), error (a bad ack).", pollBuckets, "outcome")
	m.responses = f.counterVec("http_responses_total", "HTTP responses, by endpoint (create, send, close, poll, client, metrics, health, other) and status code.", "endpoint", "status")
	m.busErrors = f.counterVec("bus_errors_total", "Failed control-plane (bus) calls, by operation.", "op")
	m.limits = f.counterVec("limit_refusals_total", "Requests refused by a limit: capacity (relay full), token (connection limit), rate (per-IP /create rate), size (message or body too large).", "limit")
	m.limitBy = make(map[string]prometheus.Counter)
	for _, l := range []string{LimitCapacity, LimitToken, LimitRate, LimitSize} {
		m.limitBy[l] = m.limits.WithLabelValues(l)
	}
	m.creates = f.counterVec("creates_total", "Router /create answers, by code (ok or the error word) and why (the client's reason for the fallback: none, failed, timeout, remembered, forced, or unspecified).", "code", "why")
	m.createSeconds = f.histogramVec("create_seconds", "Time a router took to answer /create, by code.", "code")
	m.draining = f.gauge("draining", "1 while the process is draining at shutdown.")
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the metrics live on, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// WatchRelay adds the gauges read from a relay's sessions at scrape time:
// polysocket_sessions_live, polysocket_buffered_bytes and
// polysocket_buffered_memory_bytes. Call it once.
func (m *Metrics) WatchRelay(reg *session.Registry) {
	f := factory{m.reg}
	f.gaugeFunc("sessions_live", "Live (not yet ended) sessions.", func() float64 { return float64(reg.Len()) })
	f.gaugeFunc("buffered_bytes", "Bytes of target messages buffered for clients, over all sessions.", func() float64 {
		var n int64
		reg.Range(func(s *session.Session) bool {
			n += s.Buffered()
			return true
		})
		return float64(n)
	})
	f.gaugeFunc("buffered_memory_bytes", "Memory of all sessions' buffers as --max-buffered-total counts it: payload plus 72 bytes a message.", func() float64 {
		return float64(reg.Buffered())
	})
}

// RelayLimits exports a relay's configured bounds as constant gauges,
// polysocket_capacity and polysocket_max_buffered_total_bytes, so that
// dashboards and alerts can put sessions_live and buffered_memory_bytes
// against them without knowing each relay's flags. A bound of 0 (none)
// is exported as 0. Call it once.
func (m *Metrics) RelayLimits(capacity int, maxBufferedTotal int64) {
	f := factory{m.reg}
	f.gauge("capacity", "The relay's --capacity: most live sessions.").Set(float64(capacity))
	f.gauge("max_buffered_total_bytes", "The relay's --max-buffered-total, the bound of polysocket_buffered_memory_bytes (0: none).").Set(float64(maxBufferedTotal))
}

// SessionCounters are the per-message counters for session.Config.
func (m *Metrics) SessionCounters() session.Counters {
	var polls [session.NumPollOutcomes]session.Observer
	for o := range polls {
		polls[o] = m.pollSeconds.WithLabelValues(session.PollOutcome(o).String())
	}
	return session.Counters{
		MessagesToTarget:   m.messages.WithLabelValues("to_target"),
		BytesToTarget:      m.bytes.WithLabelValues("to_target"),
		MessagesFromTarget: m.messages.WithLabelValues("from_target"),
		BytesFromTarget:    m.bytes.WithLabelValues("from_target"),
		PollsHeld:          m.pollsHeld,
		PollSeconds:        polls,
	}
}

var _ relay.Metrics = (*Metrics)(nil)

// Established implements relay.Metrics.
func (m *Metrics) Established(result control.Code, atCapacity bool, took time.Duration) {
	m.establish.WithLabelValues(string(result)).Observe(took.Seconds())
	if result == "ok" {
		m.created.Inc()
	}
	if atCapacity {
		m.LimitRefused(LimitCapacity)
	}
}

// SessionEnded implements relay.Metrics.
func (m *Metrics) SessionEnded(cause session.Cause, code int) {
	m.endedBy[endReason(cause, code)].Inc()
}

// endReason names why a session ended, from its cause and close code.
func endReason(cause session.Cause, code int) string {
	switch cause {
	case session.CauseClient:
		return "client"
	case session.CauseTarget:
		switch code {
		case 1006:
			return "target_lost"
		case 1009:
			return "too_large"
		}
		return "target_close"
	case session.CauseIdle:
		return "idle"
	case session.CausePing:
		return "ping"
	case session.CauseWrite:
		return "write_fail"
	case session.CauseShutdown:
		return "shutdown"
	}
	return "unknown"
}

// OnCreate is router.Config.OnCreate: it counts a create by code and
// why, and times it. A token limit refusal also counts as a limit
// refusal.
func (m *Metrics) OnCreate(code control.Code, why string, took time.Duration) {
	if why == "" {
		why = "unspecified"
	}
	m.creates.WithLabelValues(string(code), why).Inc()
	m.createSeconds.WithLabelValues(string(code)).Observe(took.Seconds())
	if code == control.CodeLimit {
		m.LimitRefused(LimitToken)
	}
}

// LimitRefused counts a request refused by limit (one of the Limit
// names).
func (m *Metrics) LimitRefused(limit string) {
	if c, ok := m.limitBy[limit]; ok {
		c.Inc()
		return
	}
	m.limits.WithLabelValues(limit).Inc()
}

// BusError counts a failed bus call of op.
func (m *Metrics) BusError(op string) { m.busErrors.WithLabelValues(op).Inc() }

// SetDraining sets polysocket_draining.
func (m *Metrics) SetDraining(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.draining.Set(v)
}

// factory makes collectors in the namespace and registers them.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeFunc(name, help string, fn func() float64) {
	f.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, fn))
}

// dialBuckets, 1 ms to ~16 s, span a loopback dial to a slow far-away
// target.
var dialBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// pollBuckets span a poll answered at once (well under 1 ms) to one held
// for the longest TTL (--max-ttl, 60 s by default; 25 s is the default
// TTL).
var pollBuckets = []float64{0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}

func (f factory) histogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	return f.histogramVecBuckets(name, help, dialBuckets, labels...)
}

func (f factory) histogramVecBuckets(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: name, Help: help, Buckets: buckets,
	}, labels)
	f.reg.MustRegister(h)
	return h
}
