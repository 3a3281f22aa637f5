package relay

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/polysocket/polysocket/httpconn"
	"github.com/polysocket/polysocket/jsonp"
	"github.com/polysocket/polysocket/session"
)

// Held polls outside the handler.
//
// A poll that has to wait parks on its session (session.PollPark: a
// small struct, no goroutine) and its connection leaves its server
// (httpconn.Park), and the handler returns. The answer is written on
// the connection by the goroutine the session answers on (one its
// registry owns and Shutdown waits for), which hands the connection
// back to a fast loop for the client's next request.
//
// What is lost: a parked poll does not see its client go away at once
// (nothing reads the connection). Every SweepInterval the relay peeks at
// each parked poll's socket (sweepParked) and abandons the polls whose
// client closed it, so their sessions' idle timeout starts then rather
// than at the poll's TTL. Just before an answer is written the relay
// peeks again, so a client that closed it is seen then and its messages
// are not counted as delivered.

// parked is one poll parked on its session and its connection.
type parked struct {
	r      *Relay
	s      *session.Session
	cb     string
	hasAck bool
	conn   *httpconn.Parked // nil until parked
}

// park parks the poll on its session. It returns false, having taken
// nothing, when the connection cannot be parked; the caller then polls
// as usual.
func (r *Relay) park(ctx context.Context, q *request, req *http.Request, preq session.PollRequest) bool {
	ok, free := httpconn.Parkable(q.w, req)
	if !ok || !r.cfg.ParkPolls {
		return false
	}
	p := &parked{r: r, s: q.s, cb: q.cb, hasAck: preq.HasAck}
	grace := r.cfg.ParkAfter
	if free {
		// Parking costs the fast loop no hijack and no hand-back: a
		// poll that has to wait parks at once.
		grace = 0
	}
	// The poll is parked first, under the session's lock; the connection
	// after. The answer may come in between, so it waits for the
	// connection on ready. It runs on a goroutine the session registry
	// owns (or the session's read loop), so Registry.Close waits for it.
	ready := make(chan struct{})
	preq.Owner = p
	b, held, err := q.s.PollPark(ctx, preq, grace, func(b session.Batch, err error) {
		<-ready
		if p.conn == nil {
			return // parking failed: answered by the handler
		}
		r.parked.Delete(p)
		if errors.Is(err, session.ErrAbandoned) {
			p.conn.Close() // the client is gone
			return
		}
		p.answer(b, err)
	})
	if !held {
		r.writePoll(q, preq.HasAck, b, err)
		return true
	}
	pc, ok := httpconn.Park(q.w, req)
	if !ok {
		// Cannot happen for what Parkable took; answer the poll empty
		// rather than hold it here.
		r.log.Warn("parking a poll failed")
		close(ready)
		jsonp.Write(q.w, q.cb, http.StatusOK, []byte(`{"ok":true,"messages":[]}`))
		return true
	}
	p.conn = pc
	r.parked.Store(p, struct{}{})
	close(ready)
	return true
}

// sweepLoop runs sweepParked every SweepInterval until ctx is done.
func (r *Relay) sweepLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.sweepParked()
		}
	}
}

// sweepParked abandons the parked polls whose client closed or reset the
// connection: one non-blocking peek a parked poll. It returns how many.
func (r *Relay) sweepParked() int {
	n := 0
	r.parked.Range(func(k, _ any) bool {
		p := k.(*parked)
		if p.conn.Gone() && p.s.AbandonParked(p) {
			n++
		}
		return true
	})
	return n
}

// answer writes the parked poll's answer on its connection, which then
// serves the client's next requests.
func (p *parked) answer(b session.Batch, err error) {
	// Nothing reads a parked connection, so this is where a client
	// that went away is seen (a pipelined request stays unread). With
	// an ack it need not be: the messages stay queued until acked
	// whatever the write does.
	if !p.hasAck && len(b.Messages) > 0 && p.conn.Gone() {
		p.conn.Close()
		return // messages without ack stay queued
	}
	wrote := p.conn.Respond(func(w http.ResponseWriter) bool {
		return p.r.answerPoll(&request{w: w, cb: p.cb, s: p.s}, b, err)
	})
	if wrote && !p.hasAck && len(b.Messages) > 0 && err == nil {
		// Without acks a message counts as delivered once written.
		p.s.Delivered(b.Messages[len(b.Messages)-1].Seq)
	}
}
