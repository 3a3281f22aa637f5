// Package soak holds polysocket's soak tests (test files only): many
// sessions move numbered messages both ways through fault-injecting
// proxies on both hops (client ↔ relay and relay ↔ target), and the run
// passes only when every message arrived exactly once, in order, both
// ways, and every session ended with the close it should have. Further
// tests kill a relay process (SIGKILL) and drain one (SIGTERM) in the
// middle of a soak.
//
//	go test -race -count=1 ./e2e/soak/                          # short run
//	SOAK_LONG=1 go test -count=1 -run TestSoak -v ./e2e/soak/   # 100 × 1,000
//	SOAK_SESSIONS=20 SOAK_MESSAGES=500 SOAK_SEED=123 go test …  # any size, a replayed seed
package soak
