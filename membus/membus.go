// Package membus is the in-process control-plane bus: router and relay in
// one process (`polysocket both` without Redis) talk through it with the
// same interfaces, and the same semantics, as over Redis.
package membus

import (
	"context"
	"sync"
	"time"

	"github.com/polysocket/polysocket/control"
)

// Bus is an in-memory bus. The zero value is not usable: call New.
// Methods may be called concurrently.
type Bus struct {
	ttl time.Duration

	mu       sync.Mutex
	relays   map[string]relayEntry
	handlers map[string]control.EstablishFunc
	counts   map[string]map[string]int // token → relay → connections
	wg       sync.WaitGroup            // establish handler calls
}

type relayEntry struct {
	info    control.RelayInfo
	expires time.Time
}

// New returns an empty bus whose registrations live for ttl (0: 3s).
func New(ttl time.Duration) *Bus {
	if ttl == 0 {
		ttl = 3 * time.Second
	}
	return &Bus{
		ttl:      ttl,
		relays:   make(map[string]relayEntry),
		handlers: make(map[string]control.EstablishFunc),
		counts:   make(map[string]map[string]int),
	}
}

// Register publishes info until it expires.
func (b *Bus) Register(_ context.Context, info control.RelayInfo) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.relays[info.ID] = relayEntry{info: info, expires: time.Now().Add(b.ttl)}
	return nil
}

// Unregister removes a relay and its counts.
func (b *Bus) Unregister(_ context.Context, relayID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.relays, relayID)
	for _, per := range b.counts {
		delete(per, relayID)
	}
	return nil
}

// Relays lists the live relays.
func (b *Bus) Relays(context.Context) ([]control.RelayInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	out := make([]control.RelayInfo, 0, len(b.relays))
	for id, e := range b.relays {
		if now.After(e.expires) {
			delete(b.relays, id)
			continue
		}
		out = append(out, e.info)
	}
	return out, nil
}

// Serve takes establish requests for relayID until ctx is done, then
// waits for the handler calls in flight.
func (b *Bus) Serve(ctx context.Context, relayID string, handle control.EstablishFunc) error {
	b.mu.Lock()
	b.handlers[relayID] = handle
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	delete(b.handlers, relayID)
	b.mu.Unlock()
	b.wg.Wait()
	return ctx.Err()
}

// Establish hands req to relayID's handler and waits for its reply.
func (b *Bus) Establish(ctx context.Context, relayID string, req control.EstablishRequest) (control.EstablishReply, error) {
	b.mu.Lock()
	handle, ok := b.handlers[relayID]
	if ok {
		b.wg.Add(1)
	}
	b.mu.Unlock()
	if !ok {
		return control.EstablishReply{}, control.ErrRelayGone
	}
	done := make(chan control.EstablishReply, 1)
	go func() {
		defer b.wg.Done()
		done <- handle(req)
	}()
	select {
	case rep := <-done:
		return rep, nil
	case <-ctx.Done():
		return control.EstablishReply{}, control.ErrBusTimeout
	}
}

// Acquire counts a connection of tokenName on relayID if the token's
// count over live relays is below limit (0: no limit).
func (b *Bus) Acquire(_ context.Context, tokenName, relayID string, limit int) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	per := b.counts[tokenName]
	if per == nil {
		per = make(map[string]int)
		b.counts[tokenName] = per
	}
	now := time.Now()
	total := 0
	for id, n := range per {
		if e, ok := b.relays[id]; !ok || now.After(e.expires) {
			delete(per, id) // a dead relay's sessions no longer count
			continue
		}
		total += n
	}
	if limit > 0 && total >= limit {
		return false, nil
	}
	per[relayID]++
	return true, nil
}

// Release undoes one Acquire.
func (b *Bus) Release(_ context.Context, tokenName, relayID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if per := b.counts[tokenName]; per[relayID] > 0 {
		per[relayID]--
		if per[relayID] == 0 {
			delete(per, relayID)
		}
	}
	return nil
}

// Count is the token's live connection count.
func (b *Bus) Count(_ context.Context, tokenName string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	total := 0
	for _, n := range b.counts[tokenName] {
		total += n
	}
	return total, nil
}

// Serving reports whether a Serve call for relayID is taking requests.
func (b *Bus) Serving(relayID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.handlers[relayID]
	return ok
}
