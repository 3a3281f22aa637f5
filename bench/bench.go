// Package bench is polysocket's load generator. It starts its own
// WebSocket target on loopback, drives concurrent protocol clients
// through a router and relay to it (echo, stream and idle workloads),
// verifies every message by sequence number, and can run the same
// workload over a plain WebSocket to the same target as the baseline.
//
// A run has two phases per path: create every session (timed, giving the
// create rate), then run the workload for Warmup+Duration, measuring
// only after the warmup.
package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Bench runs one configured load test.
type Bench struct {
	cfg Config
	log *zap.Logger
}

// New checks cfg and fills its defaults.
func New(cfg Config, log *zap.Logger) (*Bench, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Bench{cfg: cfg, log: log}, nil
}

// Config is the configuration in force, defaults filled in.
func (b *Bench) Config() Config { return b.cfg }

// Run runs the workload through the relay, then (with Direct) over
// plain WebSockets, and returns the figures. Errors of single requests
// are counted in the report; Run fails only when the run cannot start.
// Cancelling ctx stops the run early; the sessions are still closed.
func (b *Bench) Run(ctx context.Context) (*Report, error) {
	rep := &Report{}
	// Each session holds its poll's connection and the target's end; an
	// echo or stream session also its send connection, while an idle one
	// opens it only for the health check, maxHealthChecks at a time.
	perSession, what, extra := 3, "3 per session: poll, send, target", 64
	if b.cfg.Mode == ModeIdle {
		perSession, what, extra = 2, "2 per session: poll, target; and the health checks", 64+maxHealthChecks
	}
	need := uint64(perSession*b.cfg.Concurrency + extra)
	if lim, err := raiseNoFile(); err != nil || lim < need {
		w := fmt.Sprintf("the bench's open-file limit %d is below the ~%d this run needs (%s); raise the hard limit (ulimit -Hn)", lim, need, what)
		if err != nil {
			w += ": " + err.Error()
		}
		rep.Warnings = append(rep.Warnings, w)
		fmt.Fprintln(b.cfg.Progress, "warning:", w)
	}
	if b.cfg.RelayPID != 0 {
		// The relay holds two connections per session: the client's
		// (a parked poll) and the target's.
		need := uint64(2*b.cfg.Concurrency + 32)
		if lim, err := noFileOf(b.cfg.RelayPID); err == nil && lim < need {
			w := fmt.Sprintf("the relay's open-file limit %d is below the ~%d it needs for %d sessions (2 per session)", lim, need, b.cfg.Concurrency)
			rep.Warnings = append(rep.Warnings, w)
			fmt.Fprintln(b.cfg.Progress, "warning:", w)
		}
	}
	epoch := time.Now()
	tg, err := newTarget(epoch)
	if err != nil {
		return nil, fmt.Errorf("starting the target: %w", err)
	}
	defer tg.close()
	rep.Relay = b.runPath(ctx, &relayPath{b: b, tg: tg, pc: newProtoClient(b.cfg)}, epoch)
	for _, k := range rep.Relay.ErrorKinds {
		if strings.Contains(k.Error, `"code":"limit"`) {
			rep.Warnings = append(rep.Warnings, "the router refused creates with code limit: run it with --create-rate 0 (and a token without a connection limit) for benchmarks")
			break
		}
	}
	if (b.cfg.Direct || b.cfg.DirectTarget != "") && b.cfg.Mode != ModeIdle && ctx.Err() == nil {
		rep.Direct = b.runPath(ctx, &directPath{b: b, tg: tg}, epoch)
	}
	return rep, ctx.Err()
}

// path is one way of reaching the target: through the relay or direct.
type path interface {
	name() string
	// open creates one session (or WebSocket); the caller times it.
	open(ctx context.Context, st *stats) (conn, error)
	// rss and cpu are the relay process's RSS and CPU time so far, when
	// known.
	rss() (int64, bool)
	cpu() (time.Duration, bool)
	// opened is called once every session is open.
	opened()
	close()
}

// conn is one session or WebSocket of a path.
type conn interface {
	// work runs the workload until run ends, then finishes what is in
	// flight and closes; ctx is the whole run's context.
	work(ctx, run context.Context, st *stats)
}

func (b *Bench) runPath(ctx context.Context, p path, epoch time.Time) *Result {
	defer p.close()
	st := newStats(epoch)
	label := fmt.Sprintf("%-6s %s", p.name(), b.cfg.Mode)
	before, haveRSS := p.rss()
	stop := st.startProgress(ctx, b.cfg.Progress, label+" create", st.created.Load)
	start := time.Now()
	conns := b.openAll(ctx, p, st)
	createTime := time.Since(start)
	stop()
	p.opened()

	// The workload; CPU and RSS are read when it ends, before the
	// sessions close.
	wstart, selfCPU0 := time.Now(), cpuSelf()
	relayCPU0, haveCPU := p.cpu()
	st.setWindow(b.cfg.Warmup, b.cfg.Duration)
	run, cancel := context.WithTimeout(ctx, b.cfg.Warmup+b.cfg.Duration)
	defer cancel()
	var (
		live   sync.WaitGroup
		active atomic.Int64
	)
	stop = st.startProgress(ctx, b.cfg.Progress, label, active.Load)
	defer stop()
	for _, c := range conns {
		live.Add(1)
		active.Add(1)
		go func() {
			defer live.Done()
			defer active.Add(-1)
			c.work(ctx, run, st)
		}()
	}
	<-run.Done()
	wtime := time.Since(wstart).Seconds()
	selfCPU := cpuSelf() - selfCPU0
	relayCPU1, haveCPU1 := p.cpu()
	afterRSS, haveRSS1 := p.rss()
	close(st.measured)
	live.Wait()

	r := st.result(p.name(), b.cfg, createTime)
	r.BenchCores = selfCPU.Seconds() / wtime
	if haveCPU && haveCPU1 {
		r.RelayCores = (relayCPU1 - relayCPU0).Seconds() / wtime
	}
	if haveRSS && haveRSS1 {
		r.RSSBeforeKiB, r.RSSAfterKiB = before, afterRSS
		if r.Sessions > 0 {
			r.RSSPerSessionKiB = float64(afterRSS-before) / float64(r.Sessions)
		}
	}
	return r
}

// openAll opens Concurrency sessions, CreateParallel at a time, and
// returns those that opened.
func (b *Bench) openAll(ctx context.Context, p path, st *stats) []conn {
	conns := make([]conn, b.cfg.Concurrency)
	sem := make(chan struct{}, b.cfg.CreateParallel)
	var wg sync.WaitGroup
	for i := range conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			c, err := p.open(ctx, st)
			if err != nil {
				st.fail(err)
				return
			}
			st.create.record(time.Since(t0))
			st.created.Add(1)
			conns[i] = c
		}()
	}
	wg.Wait()
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}
