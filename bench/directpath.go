package bench

import (
	"context"
	"time"

	"github.com/coder/websocket"
)

// directPath reaches the target over a plain WebSocket: the baseline.
type directPath struct {
	b  *Bench
	tg *target
}

func (p *directPath) name() string { return "direct" }

func (p *directPath) open(ctx context.Context, _ *stats) (conn, error) {
	cfg := p.b.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	target := p.tg.url(cfg.Mode, cfg.Size, cfg.Rate)
	if cfg.DirectTarget != "" {
		target = cfg.DirectTarget
	}
	c, _, err := websocket.Dial(dctx, target, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(4 << 20)
	return &directConn{cfg: cfg, epoch: p.tg.epoch, c: c}, nil
}

func (p *directPath) rss() (int64, bool) { return 0, false }

func (p *directPath) cpu() (time.Duration, bool) { return 0, false }

func (p *directPath) opened() {}

func (p *directPath) close() {}

// directConn runs the workload on one WebSocket.
type directConn struct {
	cfg   Config
	epoch time.Time
	c     *websocket.Conn
	chk   seqCheck
}

func (d *directConn) work(ctx, run context.Context, st *stats) {
	defer d.c.CloseNow()
	var sent int64
	switch d.cfg.Mode {
	case ModeEcho:
		sent = d.echo(ctx, run, st)
	case ModeStream:
		d.stream(ctx, run, st)
	}
	_ = d.c.Close(websocket.StatusNormalClosure, "")
	lost := sent - d.chk.unique
	if ctx.Err() != nil && lost > 0 {
		lost-- // the message in flight when the run was interrupted
	}
	if d.cfg.Mode == ModeStream {
		lost = d.chk.gaps()
	}
	st.checked(&d.chk, lost)
}

func (d *directConn) echo(ctx, run context.Context, st *stats) int64 {
	buf := make([]byte, 0, d.cfg.Size+32)
	var sent int64
	for n := int64(1); run.Err() == nil; n++ {
		buf = appendPayload(buf[:0], n, time.Since(d.epoch), d.cfg.Size)
		wctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		err := d.c.Write(wctx, websocket.MessageText, buf)
		if err == nil {
			sent++
			st.sent.Add(1)
			err = d.readUntil(wctx, n, st)
		}
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				st.fail(err)
			}
			return sent
		}
	}
	return sent
}

// readUntil reads messages until the echo of n.
func (d *directConn) readUntil(ctx context.Context, n int64, st *stats) error {
	for {
		got, err := d.read(ctx, st)
		if err != nil || got >= n {
			return err
		}
	}
}

func (d *directConn) read(ctx context.Context, st *stats) (int64, error) {
	_, data, err := d.c.Read(ctx)
	if err != nil {
		return 0, err
	}
	seq, ts, err := parsePayload(string(data))
	if err != nil {
		st.fail(err)
		return 0, nil
	}
	if d.chk.see(seq) {
		st.delivered(ts)
	}
	return seq, nil
}

func (d *directConn) stream(ctx, run context.Context, st *stats) {
	wctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	err := d.c.Write(wctx, websocket.MessageText, []byte("go"))
	cancel()
	if err != nil {
		st.fail(err)
		return
	}
	for {
		if _, err := d.read(run, st); err != nil {
			// The end of run cancels the read; anything else is an error.
			if run.Err() == nil {
				st.fail(err)
			}
			return
		}
	}
}
