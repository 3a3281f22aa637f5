package redisbus

import (
	"context"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// Resubscribe backoff bounds: quick enough that a restarted Redis is back
// in use within about a second, slow enough not to spin while it is down.
const (
	minResubscribe = 50 * time.Millisecond
	maxResubscribe = time.Second
)

// subscribeCmd subscribes to channel, sharded on a Cluster.
func (b *Bus) subscribeCmd(channel string) rueidis.Completed {
	if b.sharded {
		return b.client.B().Ssubscribe().Channel(channel).Build()
	}
	return b.client.B().Subscribe().Channel(channel).Build()
}

// publish sends msg to channel and returns how many subscribers got it.
func (b *Bus) publish(ctx context.Context, channel string, msg []byte) (int64, error) {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	var cmd rueidis.Completed
	if b.sharded {
		cmd = b.client.B().Spublish().Channel(channel).Message(rueidis.BinaryString(msg)).Build()
	} else {
		cmd = b.client.B().Publish().Channel(channel).Message(rueidis.BinaryString(msg)).Build()
	}
	return b.client.Do(ctx, cmd).AsInt64()
}

// receiveLoop keeps channel subscribed until ctx is done, resubscribing
// with backoff after every loss (Redis restarts, failovers, slot moves).
// onMsg and onSub run in the rueidis read loop and must not block. onSub
// reports true when the subscription is confirmed and false when it is
// lost.
func (b *Bus) receiveLoop(ctx context.Context, channel string, onMsg func(rueidis.PubSubMessage), onSub func(bool)) {
	delay := minResubscribe
	for {
		start := time.Now()
		hctx := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
			if s.Channel == channel {
				onSub(s.Kind == "subscribe" || s.Kind == "ssubscribe")
			}
		})
		err := b.client.Receive(hctx, b.subscribeCmd(channel), onMsg)
		onSub(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 2*maxResubscribe {
			// The subscription was up for a while: a fresh outage.
			delay = minResubscribe
		}
		b.log.Warn("redisbus: subscription lost, resubscribing",
			zap.String("channel", channel), zap.Duration("after", delay), zap.Error(err))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, maxResubscribe)
	}
}
