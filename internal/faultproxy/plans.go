package faultproxy

import (
	"math/rand/v2"
	"time"
)

// MaxPause is the longest pause the plans here draw.
const MaxPause = 2 * time.Second

// odds are how often (percent per connection) and how hard the faults
// that merely slow a connection come.
type odds struct {
	latency, slice, pause int           // percent of connections
	maxLatency, maxJitter time.Duration // when latency comes
	pauseWithin           int64         // a pause starts within these bytes
}

// ClientHop draws the faults of a connection between a client and a
// relay: each connection may get latency with jitter, sliced writes and
// a pause of either direction, and at most one of: its answer reset
// part-way, or its request cut off. The offsets fall within the first
// few requests or answers of the connection, so a keep-alive connection
// meets its fault early.
func ClientHop(r *rand.Rand) Faults {
	f := odds{latency: 30, slice: 20, pause: 4, maxLatency: 20 * time.Millisecond,
		maxJitter: 20 * time.Millisecond, pauseWithin: 2000}.draw(r)
	switch x := r.IntN(100); {
	case x < 12:
		f.ResetAfter = 1 + r.Int64N(1500)
	case x < 24:
		f.CutAfter = 1 + r.Int64N(1500)
	}
	return f
}

// TargetHop draws the faults of a relay's WebSocket to its target:
// latency with jitter, sliced writes and pauses, never a reset or a cut
// (either ends the session).
func TargetHop(r *rand.Rand) Faults {
	return odds{latency: 50, slice: 40, pause: 30, maxLatency: 5 * time.Millisecond,
		maxJitter: 5 * time.Millisecond, pauseWithin: 20000}.draw(r)
}

// draw draws latency, slicing and pauses as o says.
func (o odds) draw(r *rand.Rand) Faults {
	var f Faults
	if r.IntN(100) < o.latency {
		f.Latency = time.Duration(r.Int64N(int64(o.maxLatency)))
		f.Jitter = 1 + time.Duration(r.Int64N(int64(o.maxJitter)))
	}
	if r.IntN(100) < o.slice {
		f.SliceMax = 1 + r.IntN(64)
	}
	if r.IntN(100) < o.pause {
		f.PauseUp = Stop{At: r.Int64N(o.pauseWithin), For: pause(r)}
	}
	if r.IntN(100) < o.pause {
		f.PauseDown = Stop{At: r.Int64N(o.pauseWithin), For: pause(r)}
	}
	return f
}

// pause is a random pause up to MaxPause.
func pause(r *rand.Rand) time.Duration {
	return time.Duration(1 + r.Int64N(int64(MaxPause)))
}
