package bench

import (
	"context"
	"errors"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// maxErrorKinds bounds the distinct error texts kept for the report.
const maxErrorKinds = 20

// stats collects one path's figures (relay or direct); every method may
// be called concurrently.
type stats struct {
	epoch time.Time

	// The measured window in ns since epoch, set before workers start.
	windowStart, windowEnd int64

	msgs      atomic.Int64 // delivered while measuring
	total     atomic.Int64 // delivered, warmup included
	sent      atomic.Int64
	errs      atomic.Int64
	lost      atomic.Int64
	dup       atomic.Int64
	reordered atomic.Int64
	beats     atomic.Int64
	polls     atomic.Int64 // answered polls, warmup included
	created   atomic.Int64
	healthy   atomic.Int64

	lat    hist
	create hist

	mu    sync.Mutex
	kinds map[string]int64

	// measured is closed once the relay's CPU and RSS are read at the
	// end of the run; idle sessions hold their health checks until then,
	// so the reading is of idle sessions only.
	measured chan struct{}
	// checks bounds the idle health checks in flight, so the relay's
	// descriptors peak at 2 per session plus this, not 3 per session.
	checks chan struct{}
}

// maxHealthChecks is how many idle sessions check their health at once.
const maxHealthChecks = 64

func newStats(epoch time.Time) *stats {
	return &stats{
		epoch:    epoch,
		kinds:    map[string]int64{},
		measured: make(chan struct{}),
		checks:   make(chan struct{}, maxHealthChecks),
	}
}

// fail counts an error and keeps its text (without URLs, which hold
// socket ids) for the report.
func (s *stats) fail(err error) {
	s.errs.Add(1)
	text := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		text = ue.Op + ": " + ue.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		text = "timeout: " + text
	}
	if len(text) > 160 {
		text = text[:160]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.kinds[text]; ok || len(s.kinds) < maxErrorKinds {
		s.kinds[text]++
	}
}

// delivered records one message that arrived for the first time, sent
// at ts (since epoch). It counts when it arrives inside the measured
// window.
func (s *stats) delivered(ts time.Duration) {
	s.total.Add(1)
	now := int64(time.Since(s.epoch))
	if now >= s.windowStart && now < s.windowEnd {
		s.msgs.Add(1)
		s.lat.record(time.Duration(now) - ts)
	}
}

// checked adds a finished session's sequence verdict.
func (s *stats) checked(c *seqCheck, lost int64) {
	s.lost.Add(lost)
	s.dup.Add(c.dup)
	s.reordered.Add(c.reordered)
}

// setWindow fixes the measured window, from now+warmup for duration;
// call it before any worker starts.
func (s *stats) setWindow(warmup, duration time.Duration) {
	s.windowStart = int64(time.Since(s.epoch) + warmup)
	s.windowEnd = s.windowStart + int64(duration)
}

func (s *stats) errorKinds() []ErrorKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ErrorKind, 0, len(s.kinds))
	for k, n := range s.kinds {
		out = append(out, ErrorKind{Error: k, Count: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}
