package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

var (
	errEchoTimeout   = errors.New("echo did not come back in time")
	errSessionEnded  = errors.New("the session's poll loop ended early")
	errUnexpectedEnd = errors.New("the relay closed the session")
)

// relayPath reaches the target through a router and relay.
type relayPath struct {
	b  *Bench
	tg *target
	pc *protoClient
}

func (p *relayPath) name() string { return "relay" }

func (p *relayPath) open(ctx context.Context, _ *stats) (conn, error) {
	cfg := p.b.cfg
	s, err := p.pc.create(ctx, p.tg.url(cfg.Mode, cfg.Size, cfg.Rate))
	if err != nil {
		return nil, err
	}
	return &relaySession{cfg: cfg, epoch: p.tg.epoch, s: s}, nil
}

func (p *relayPath) rss() (int64, bool) {
	if p.b.cfg.RelayPID == 0 {
		return 0, false
	}
	v, err := rssKiB(p.b.cfg.RelayPID)
	if err != nil {
		p.b.log.Warn("reading the relay's RSS", zap.Error(err))
		return 0, false
	}
	return v, true
}

func (p *relayPath) cpu() (time.Duration, bool) {
	if p.b.cfg.RelayPID == 0 {
		return 0, false
	}
	v, err := cpuOf(p.b.cfg.RelayPID)
	return v, err == nil
}

// opened closes the connections that carried the creates: an idle run
// near the open-file limit needs their descriptors.
func (p *relayPath) opened() { p.pc.close() }

func (p *relayPath) close() { p.pc.close() }

// relaySession runs one session's workload: a poll loop goroutine and,
// in echo mode, a lockstep sender.
type relaySession struct {
	cfg   Config
	epoch time.Time
	s     *psession

	closing atomic.Bool // we asked for the close
	// Written by the poll loop, read after it ended.
	pollErrs   int
	unexpected bool
	chk        seqCheck
}

func (c *relaySession) work(ctx, run context.Context, st *stats) {
	defer c.s.release()
	echoed := make(chan int64, 16)
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.pollLoop(pctx, st, echoed)
	}()
	var sent int64
	healthy := true
	switch c.cfg.Mode {
	case ModeEcho:
		sent = c.echo(ctx, run, st, echoed, done)
	case ModeStream:
		// Any message starts the target's stream.
		if c.send(ctx, 1, []byte("go"), st) == nil {
			waitAny(run, done)
		}
	case ModeIdle:
		waitAny(run, done)
		select {
		case <-st.measured:
		case <-done:
		}
		// The health check: the session still moves a message. At most
		// maxHealthChecks at once, each closing its session before the
		// next starts.
		select {
		case st.checks <- struct{}{}:
			// The slot is freed once the session's connections are.
			defer func() { c.s.release(); <-st.checks }()
		case <-ctx.Done():
		}
		buf := appendPayload(nil, 1, time.Since(c.epoch), c.cfg.Size)
		healthy = false
		if c.send(ctx, 1, buf, st) == nil {
			sent = 1
			healthy = c.await(ctx, 1, st, echoed, done)
		}
	}
	c.finish(ctx, st, done, pcancel)
	lost := sent - c.chk.unique
	if ctx.Err() != nil && lost > 0 {
		lost-- // the message in flight when the run was interrupted
	}
	if c.cfg.Mode == ModeStream {
		lost = c.chk.gaps()
	}
	st.checked(&c.chk, lost)
	if c.cfg.Mode == ModeIdle && healthy && c.pollErrs == 0 && !c.unexpected {
		st.healthy.Add(1)
	}
}

// finish closes the session and waits for the poll loop to end, which
// it does at the close message. A stream never runs dry, so its poll
// loop stops first rather than drain the relay's buffer.
func (c *relaySession) finish(ctx context.Context, st *stats, done <-chan struct{}, pcancel context.CancelFunc) {
	c.closing.Store(true)
	if c.cfg.Mode == ModeStream {
		pcancel()
		<-done
	}
	select {
	case <-done:
		if c.cfg.Mode != ModeStream || c.unexpected {
			return // the session already ended
		}
	default:
	}
	// Closed even when the run was interrupted (the request has its own
	// timeout), so no session outlives the bench.
	if err := c.s.closeSession(context.WithoutCancel(ctx)); err != nil {
		st.fail(err)
		pcancel() // no close message will come
	}
	t := time.NewTimer(c.cfg.Timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		st.fail(errors.New("no close message after /c"))
		pcancel()
		<-done
	}
}

func waitAny(a context.Context, b <-chan struct{}) {
	select {
	case <-a.Done():
	case <-b:
	}
}

// echo sends numbered messages in lockstep until run ends and returns
// how many it sent.
func (c *relaySession) echo(ctx, run context.Context, st *stats, echoed <-chan int64, done <-chan struct{}) int64 {
	buf := make([]byte, 0, c.cfg.Size+32)
	var sent int64
	for n := int64(1); run.Err() == nil; n++ {
		buf = appendPayload(buf[:0], n, time.Since(c.epoch), c.cfg.Size)
		if c.send(ctx, n, buf, st) != nil {
			return sent
		}
		sent++
		st.sent.Add(1)
		if !c.await(ctx, n, st, echoed, done) {
			return sent
		}
	}
	return sent
}

// await waits for the echo of message n.
func (c *relaySession) await(ctx context.Context, n int64, st *stats, echoed <-chan int64, done <-chan struct{}) bool {
	t := time.NewTimer(c.cfg.Timeout)
	defer t.Stop()
	for {
		select {
		case got := <-echoed:
			if got >= n {
				return true
			}
		case <-t.C:
			st.fail(errEchoTimeout)
			return false
		case <-done:
			if ctx.Err() == nil {
				st.fail(errSessionEnded)
			}
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// send sends message n, retrying with the same n (the relay applies it
// once) after a network error.
func (c *relaySession) send(ctx context.Context, n int64, text []byte, st *stats) error {
	var err error
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		if err = c.s.send(ctx, n, text); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err // interrupted: not the relay's error
		}
		st.fail(err)
		var se *statusError
		if errors.As(err, &se) {
			return err
		}
	}
	return err
}

// pollLoop polls with acks until the session's close message, a dead
// session or ctx's end, and hands each text message to the checker.
func (c *relaySession) pollLoop(ctx context.Context, st *stats, echoed chan<- int64) {
	var (
		rep   pollReply
		ack   int64
		fails int
	)
	for ctx.Err() == nil {
		if err := c.s.poll(ctx, c.cfg.PollTTL, ack, &rep); err != nil {
			var se *statusError
			if ctx.Err() != nil || c.closing.Load() && errors.As(err, &se) && se.status == http.StatusForbidden {
				return // stopped, or gone after our close
			}
			st.fail(err)
			c.pollErrs++
			if fails++; fails >= 5 || (errors.As(err, &se) && se.status == http.StatusForbidden) {
				return
			}
			sleepCtx(ctx, time.Duration(fails)*100*time.Millisecond)
			continue
		}
		fails = 0
		st.polls.Add(1)
		for _, m := range rep.Messages {
			if m.Seq != 0 && m.Seq <= ack {
				continue // a re-delivery of what was acked: not for us
			}
			ack = max(ack, m.Seq)
			switch m.Type {
			case "heartbeat":
				st.beats.Add(1)
			case "text":
				c.onText(m.Data, st, echoed)
			case "close":
				if !c.closing.Load() {
					c.unexpected = true
					st.fail(fmt.Errorf("%w: code %d", errUnexpectedEnd, m.Code))
				}
				// Ack the close so the relay forgets the session now.
				_ = c.s.poll(ctx, 0, ack, &rep)
				return
			default:
				st.fail(fmt.Errorf("unexpected message type %q", m.Type))
			}
		}
	}
}

func (c *relaySession) onText(data string, st *stats, echoed chan<- int64) {
	seq, ts, err := parsePayload(data)
	if err != nil {
		st.fail(err)
		return
	}
	if c.chk.see(seq) {
		st.delivered(ts)
	}
	select {
	case echoed <- seq:
	default: // nobody waits (stream mode)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
