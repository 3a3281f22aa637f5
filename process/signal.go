package process

import (
	"context"
	"os/signal"
	"syscall"
)

// SignalContext is ctx, cancelled at the first SIGTERM or SIGINT, the
// signals that start a process's shutdown. Until stop is called later
// ones are caught too (the shutdown goes on); stop releases them.
func SignalContext(ctx context.Context) (c context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
}
