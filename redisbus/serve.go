package redisbus

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/polysocket/polysocket/control"
)

// Serve delivers the establish requests addressed to relayID to handle,
// each in its own goroutine, and publishes each reply to the router that
// asked. It keeps the subscription up across Redis outages by itself,
// blocks until ctx is done, and returns nil only after every handle call
// it started has returned. Requests already past their deadline are
// dropped unanswered: the router has stopped waiting.
func (b *Bus) Serve(ctx context.Context, relayID string, handle control.EstablishFunc) error {
	if relayID == "" {
		return errors.New("redisbus: serve: empty relay ID")
	}
	log := b.log.With(zap.String("relay", relayID))
	queue := make(chan envelope, b.cfg.QueueSize)
	onMsg := func(msg rueidis.PubSubMessage) {
		var env envelope
		if err := json.Unmarshal([]byte(msg.Message), &env); err != nil {
			log.Warn("redisbus: bad establish request", zap.Error(err))
			return
		}
		select {
		case queue <- env:
		default:
			log.Warn("redisbus: establish queue full, dropping request", zap.String("id", env.Request.ID))
		}
	}

	var handlers sync.WaitGroup
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		// Only this goroutine calls handlers.Add, and Serve waits for it
		// before handlers.Wait.
		for {
			select {
			case <-ctx.Done():
				return
			case env := <-queue:
				handlers.Add(1)
				go func() {
					defer handlers.Done()
					b.handle(ctx, log, env, handle)
				}()
			}
		}
	}()

	b.receiveLoop(ctx, b.establishChannel(relayID), onMsg, func(bool) {})
	<-dispatched
	handlers.Wait()
	return nil
}

// handle runs one establish request and publishes its reply.
func (b *Bus) handle(ctx context.Context, log *zap.Logger, env envelope, handle control.EstablishFunc) {
	req := env.Request
	if req.DeadlineUnixMilli != 0 && time.Now().UnixMilli() >= req.DeadlineUnixMilli {
		log.Debug("redisbus: establish request past its deadline", zap.String("id", req.ID))
		return
	}
	reply := handle(req)
	reply.ID = req.ID
	msg, err := json.Marshal(replyEnvelope{Corr: env.Corr, Reply: reply})
	if err != nil {
		log.Error("redisbus: encode establish reply", zap.Error(err))
		return
	}
	// The reply still matters while the relay shuts down: the session it
	// describes exists.
	n, err := b.publish(context.WithoutCancel(ctx), env.Reply, msg)
	switch {
	case err != nil:
		log.Warn("redisbus: publish establish reply", zap.String("id", req.ID), zap.Error(err))
	case n == 0:
		log.Debug("redisbus: establish reply reached no router", zap.String("id", req.ID))
	}
}
