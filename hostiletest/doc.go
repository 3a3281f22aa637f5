// Package hostiletest attacks the real polysocket binary, in its own
// process, with clients that hold no session and try to make it hold
// memory for them (slow bodies, parameter bombs, forged hosts; issue
// 10), reading the process's memory from /proc. It has tests only.
package hostiletest
