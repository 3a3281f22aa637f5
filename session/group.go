package session

import (
	"context"
	"sync"
)

// group counts the goroutines a Registry owns: every session's read
// loop, its closing and its ping, and the deliveries of parked polls'
// answers. Unlike a sync.WaitGroup it may gain a goroutine while
// someone waits (a timer can answer a parked poll during Close), and
// wait takes a context.
type group struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil when nobody waits
}

// add counts a goroutine that is already running (a timer's); done
// ends it.
func (g *group) add() {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
}

func (g *group) done() {
	g.mu.Lock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
}

// goFunc runs f on a counted goroutine.
func (g *group) goFunc(f func()) {
	g.add()
	go func() {
		defer g.done()
		f()
	}()
}

// wait returns once no counted goroutine runs, or ctx's error when ctx
// ends first.
func (g *group) wait(ctx context.Context) error {
	g.mu.Lock()
	if g.n == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
