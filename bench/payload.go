package bench

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// A payload is text: "<seq> <nanoseconds since the run's epoch> " padded
// with 'x' to the message size. Monotonic time from one epoch works
// because the target and the clients live in this process.

// appendPayload appends a payload of at least size bytes to b.
func appendPayload(b []byte, seq int64, ts time.Duration, size int) []byte {
	start := len(b)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(ts), 10)
	b = append(b, ' ')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

var errPayload = errors.New("malformed payload")

// parsePayload reads seq and timestamp back.
func parsePayload(s string) (seq int64, ts time.Duration, err error) {
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return 0, 0, errPayload
	}
	seq, err = strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, 0, errPayload
	}
	rest := s[i+1:]
	j := strings.IndexByte(rest, ' ')
	if j < 0 {
		return 0, 0, errPayload
	}
	n, err := strconv.ParseInt(rest[:j], 10, 64)
	if err != nil {
		return 0, 0, errPayload
	}
	return seq, time.Duration(n), nil
}

// maxGapTracked bounds the missing-sequence set of one session: a gap
// wider than this is counted as lost at once.
const maxGapTracked = 4096

// seqCheck verifies one session's sequence numbers: each must be the
// last one plus one. Only one goroutine uses a seqCheck.
type seqCheck struct {
	last    int64
	missing map[int64]struct{}
	// lost counts gaps too wide to track.
	lost, dup, reordered, unique int64
}

// see records seq and reports whether it is new.
func (c *seqCheck) see(seq int64) bool {
	switch {
	case seq == c.last+1:
		c.last = seq
	case seq > c.last+1:
		if seq-c.last-1 > maxGapTracked {
			c.lost += seq - c.last - 1
		} else {
			if c.missing == nil {
				c.missing = make(map[int64]struct{})
			}
			for m := c.last + 1; m < seq; m++ {
				c.missing[m] = struct{}{}
			}
		}
		c.last = seq
	default:
		if _, ok := c.missing[seq]; ok {
			delete(c.missing, seq)
			c.reordered++
			break
		}
		c.dup++
		return false
	}
	c.unique++
	return true
}

// gaps is the number of sequence numbers skipped and never seen.
func (c *seqCheck) gaps() int64 { return c.lost + int64(len(c.missing)) }
