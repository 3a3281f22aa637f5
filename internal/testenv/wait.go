package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10ms until it holds or the deadline passes,
// then fails the test with what.
func WaitFor(t testing.TB, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitEvery(t, deadline, 10*time.Millisecond, what, cond)
}

// WaitEvery is WaitFor polling every interval, for conditions that are
// costly to check (a process to run, a server to ask).
func WaitEvery(t testing.TB, deadline, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		}
		time.Sleep(interval)
	}
}
