package session

import (
	"context"
	"sync"
)

// Counts are how many sessions a Registry holds.
type Counts struct {
	// Live sessions have not ended.
	Live int
	// Known sessions are the live ones and the ended ones whose close
	// message a client may still collect (their requests still answer).
	Known int
}

// watch wakes the goroutines waiting in WaitUntil at every change of
// the counts.
type watch struct {
	mu      sync.Mutex
	changed chan struct{} // closed at the next change; nil: nobody waits
}

func (w *watch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed == nil {
		w.changed = make(chan struct{})
	}
	return w.changed
}

func (w *watch) notify() {
	w.mu.Lock()
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
	w.mu.Unlock()
}

// Counts returns the registry's counts now.
func (r *Registry) Counts() Counts {
	return Counts{Live: int(r.live.Load()), Known: int(r.known.Load())}
}

// WaitUntil returns once cond holds for the registry's counts, checked
// at every change, or ctx's error when ctx ends first.
func (r *Registry) WaitUntil(ctx context.Context, cond func(Counts) bool) error {
	for {
		ch := r.watch.next() // before the check, so no change is missed
		if cond(r.Counts()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
