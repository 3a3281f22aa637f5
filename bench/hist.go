package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear like HDR: 128 linear sub-buckets per power
// of two keep every reading within 1% without storing samples, and
// atomic counters let every worker record without a lock.
const (
	subBits    = 7
	subBuckets = 1 << subBits
	maxExp     = 44 // 2^44 ns ≈ 4.9 h, far beyond any timeout here
	nBuckets   = (maxExp + 1) * subBuckets
)

// hist is a concurrent latency histogram in nanoseconds.
type hist struct {
	counts [nBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Int64
}

func bucketOf(v int64) int {
	if v < subBuckets {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - subBits - 1
	if exp >= maxExp {
		return nBuckets - 1
	}
	return (exp+1)*subBuckets + int(uint64(v)>>exp) - subBuckets
}

// midOf is the middle of bucket i, reported as the bucket's value.
func midOf(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	exp := i/subBuckets - 1
	low := int64(i%subBuckets+subBuckets) << exp
	return low + (int64(1)<<exp)/2
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(max(v, 0)))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// quantile returns the value at q (0..1); zero when empty.
func (h *hist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(midOf(i)), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Latency is a summary of a latency distribution, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (h *hist) summary() Latency {
	n := h.n.Load()
	l := Latency{Count: n}
	if n == 0 {
		return l
	}
	l.Mean = float64(h.sum.Load()) / float64(n) / float64(time.Millisecond)
	l.P50 = ms(h.quantile(0.50))
	l.P90 = ms(h.quantile(0.90))
	l.P99 = ms(h.quantile(0.99))
	l.Max = ms(time.Duration(h.max.Load()))
	return l
}
