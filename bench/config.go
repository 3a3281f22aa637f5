package bench

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

// Mode is a workload.
type Mode string

// The workloads.
const (
	// ModeEcho: each client sends a numbered message and waits for its
	// echo before sending the next (lockstep); RTT is measured.
	ModeEcho Mode = "echo"
	// ModeStream: the target pushes numbered messages to every session;
	// clients only poll (with acks); delivery latency is measured.
	ModeStream Mode = "stream"
	// ModeIdle: sessions hold a parked poll each and nothing else; the
	// relay's RSS per session is measured.
	ModeIdle Mode = "idle"
)

// Config is what a run does. Zero values take the defaults noted.
type Config struct {
	// Router is the router's base URL. Default http://127.0.0.1:8080.
	Router string
	// Routers, when not empty, are the base URLs of several routers (a
	// cluster): sessions are created on them in turn, and Router is not
	// used. Default: Router alone.
	Routers []string
	// Token is sent to /create. Default "dev".
	Token string
	// Mode is the workload. Default echo.
	Mode Mode
	// Concurrency is the number of sessions (clients). Default 1.
	Concurrency int
	// Size is the message size in bytes; a message is never shorter than
	// its header (sequence number and timestamp, about 30 bytes).
	// Default 64.
	Size int
	// Duration is the measured time. Default 10s.
	Duration time.Duration
	// Warmup runs the workload before measuring; it is not counted.
	// Zero means none.
	Warmup time.Duration
	// Rate is, in stream mode, the messages per second the target pushes
	// to each session; 0 means as fast as the connection takes them.
	Rate float64
	// Direct also runs the workload over a plain WebSocket to the same
	// target, as the baseline (echo and stream modes).
	Direct bool
	// DirectTarget, if set, is a WebSocket echo target of another
	// process (e.g. polysocket both's /echo) that the direct baseline
	// uses instead of the tool's own: the cost of a WebSocket round trip
	// between processes. Echo mode only; it implies Direct.
	DirectTarget string
	// RelayPID is the relay's process id, whose RSS idle mode reports
	// (Linux /proc). Zero means no RSS figures.
	RelayPID int
	// PollTTL is the ttl of every poll. Default 25s.
	PollTTL time.Duration
	// CreateParallel bounds concurrent /create requests. Default 64.
	CreateParallel int
	// Timeout bounds every single request and every echo wait. Default
	// 20s (a poll gets PollTTL on top).
	Timeout time.Duration
	// Progress receives a progress line every second; nil means none.
	Progress io.Writer
}

// DefaultConfig is the configuration New uses for zero fields; the
// bench command's flags take their defaults from it.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.Router == "" {
		c.Router = "http://127.0.0.1:8080"
	}
	if len(c.Routers) == 0 {
		c.Routers = []string{c.Router}
	}
	if c.Token == "" {
		c.Token = "dev"
	}
	if c.Mode == "" {
		c.Mode = ModeEcho
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.Size == 0 {
		c.Size = 64
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.PollTTL == 0 {
		c.PollTTL = 25 * time.Second
	}
	if c.CreateParallel == 0 {
		c.CreateParallel = 64
	}
	if c.Timeout == 0 {
		c.Timeout = 20 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

func (c Config) validate() error {
	switch c.Mode {
	case ModeEcho, ModeStream, ModeIdle:
	default:
		return fmt.Errorf("unknown mode %q (echo, stream or idle)", c.Mode)
	}
	if c.Concurrency < 0 || c.Size < 0 || c.Duration < 0 || c.Warmup < 0 || c.Rate < 0 || c.CreateParallel < 0 {
		return errors.New("concurrency, size, duration, warmup, rate and create parallelism must not be negative")
	}
	if c.DirectTarget != "" {
		u, err := url.Parse(c.DirectTarget)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return fmt.Errorf("direct target %q is not a ws(s) URL", c.DirectTarget)
		}
		if c.Mode != ModeEcho {
			return errors.New("a direct target is for echo mode only")
		}
	}
	for _, r := range c.Routers {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("router %q is not an http(s) URL", r)
		}
	}
	return nil
}
