// Package session holds polysocket's sessions: each one owns a real
// WebSocket to its target and the two queues between that target and a
// client that speaks only in requests: the numbered messages waiting to be
// polled (target to client) and the numbered sends waiting for their turn
// (client to target).
//
// It knows nothing of HTTP: the relay package turns requests into calls of
// Registry and Session.
//
// Lock order: Session.sendMu before Session.mu. Registry methods take no
// session lock while holding their own.
package session
