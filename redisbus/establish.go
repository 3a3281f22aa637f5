package redisbus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/polysocket/polysocket/control"
)

// envelope is what goes over an establish channel: the request, where to
// send the reply, and a correlation id unique to the Establish call. The
// request ID alone would not do: a router that retries a request on
// another relay may reuse it, and the first relay's late reply must not
// answer the retry.
type envelope struct {
	Reply   string                   `json:"reply"`
	Corr    string                   `json:"corr"`
	Request control.EstablishRequest `json:"req"`
}

// replyEnvelope is what goes back over a reply channel.
type replyEnvelope struct {
	Corr  string                 `json:"corr"`
	Reply control.EstablishReply `json:"reply"`
}

// Establish asks relay relayID to open a session and waits for its reply
// until ctx is done (or Config.EstablishTimeout when ctx has no deadline).
// It fills in req.ID and req.DeadlineUnixMilli when they are empty. It
// returns control.ErrRelayGone when nothing listens on the relay's
// channel, control.ErrBusTimeout when no reply came in time, and an error
// wrapping control.ErrBusDown when Redis cannot be reached.
func (b *Bus) Establish(ctx context.Context, relayID string, req control.EstablishRequest) (control.EstablishReply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.EstablishTimeout)
		defer cancel()
	}
	if req.ID == "" {
		req.ID = randomID()
	}
	if req.DeadlineUnixMilli == 0 {
		dl, _ := ctx.Deadline()
		req.DeadlineUnixMilli = dl.UnixMilli()
	}
	if err := b.awaitReplies(ctx); err != nil {
		return control.EstablishReply{}, err
	}
	corr := randomID()
	ch := b.addWaiter(corr)
	defer b.removeWaiter(corr)

	msg, err := json.Marshal(envelope{Reply: b.replyChannel(), Corr: corr, Request: req})
	if err != nil {
		return control.EstablishReply{}, fmt.Errorf("redisbus: encode establish request: %w", err)
	}
	n, err := b.publish(ctx, b.establishChannel(relayID), msg)
	if err != nil {
		return control.EstablishReply{}, busErr("establish on relay "+relayID, err)
	}
	if n == 0 {
		return control.EstablishReply{}, fmt.Errorf("redisbus: establish on relay %s: %w", relayID, control.ErrRelayGone)
	}
	select {
	case reply := <-ch:
		return reply, nil
	case <-ctx.Done():
		return control.EstablishReply{}, fmt.Errorf("redisbus: establish on relay %s: %w", relayID, control.ErrBusTimeout)
	}
}

// awaitReplies starts the reply subscription on first use and waits until
// it is confirmed, for at most OpTimeout: a request published before the
// subscription stands would lose its reply.
func (b *Bus) awaitReplies(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("redisbus: establish: %w: bus closed", control.ErrBusDown)
	}
	if !b.repliesStarted {
		b.repliesStarted = true
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.receiveLoop(b.ctx, b.replyChannel(), b.onReply, b.onReplySubscription)
		}()
	}
	ready := b.repliesReady
	b.mu.Unlock()

	t := time.NewTimer(b.cfg.OpTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redisbus: establish: %w: reply channel not subscribed", control.ErrBusTimeout)
	case <-t.C:
		return fmt.Errorf("redisbus: establish: %w: reply channel not subscribed", control.ErrBusDown)
	}
}

// onReplySubscription tracks whether the reply channel is subscribed. It
// runs in the rueidis read loop (and in receiveLoop); it only flips state.
func (b *Bus) onReplySubscription(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case on && !b.repliesOn:
		close(b.repliesReady)
		b.repliesOn = true
	case !on && b.repliesOn:
		b.repliesReady = make(chan struct{})
		b.repliesOn = false
	}
}

// onReply hands a reply to its waiting Establish. It runs in the rueidis
// read loop, so it never blocks: each waiter's channel has room for one
// reply, and duplicates are dropped.
func (b *Bus) onReply(msg rueidis.PubSubMessage) {
	var env replyEnvelope
	if err := json.Unmarshal([]byte(msg.Message), &env); err != nil {
		b.log.Warn("redisbus: bad establish reply", zap.Error(err))
		return
	}
	b.mu.Lock()
	ch := b.waiters[env.Corr]
	b.mu.Unlock()
	if ch == nil {
		b.log.Debug("redisbus: establish reply nobody waits for", zap.String("id", env.Reply.ID))
		return
	}
	select {
	case ch <- env.Reply:
	default:
	}
}

// addWaiter registers the Establish call corr; the id is random, so it
// is unique.
func (b *Bus) addWaiter(corr string) chan control.EstablishReply {
	ch := make(chan control.EstablishReply, 1)
	b.mu.Lock()
	b.waiters[corr] = ch
	b.mu.Unlock()
	return ch
}

func (b *Bus) removeWaiter(corr string) {
	b.mu.Lock()
	delete(b.waiters, corr)
	b.mu.Unlock()
}
