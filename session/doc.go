// Package session holds polysocket's sessions: each one owns a real
// WebSocket to its target and the two queues between that target and a
// client that speaks only in requests: the numbered messages waiting to be
// polled (target to client) and the numbered sends waiting for their turn
// (client to target).
//
// It knows nothing of HTTP: the relay package turns requests into calls of
// Registry and Session.
//
// # Polls
//
// Every poll goes one way (park in poll.go): it takes the session's turn,
// is answered at once when it can, and otherwise parks: a small struct
// on the session, answered by whoever changes what it waits for (a
// message, its TTL on the session's timer, a newer poll, the session's
// end). Poll is that path with a goroutine waiting for the answer;
// PollPark hands the answer to a callback of the caller's.
//
// # Goroutines
//
// The Registry owns every goroutine the package starts and Close waits
// for them (group.go): each session's read loop, the closing of its
// target connection, its ping, and the delivery of parked polls'
// answers (a new goroutine each, since the answer writes to the network
// and its cause is a request, a timer or the session's lock holder).
//
// One answer does not get a goroutine: when the read loop queues a
// message for a parked poll, the read loop answers it itself, just
// before its next read of the target's socket would block (the
// upgradedConn's beforeRead in dial.go, called from inside the WebSocket
// library's read). This is for speed: frames that arrived together leave
// in one answer instead of one answer each (a stream's polls carried a
// few messages instead of hundreds with a goroutine per answer, and the
// goroutine's start on an idle core costs a thread wake-up), a lone
// message leaves at once, and nothing is started. So an answer callback
// must not block for long: the session reads nothing meanwhile.
//
// Lock order: Session.sendMu before Session.mu. Registry methods take no
// session lock while holding their own. No callback (OnEnd, a parked
// poll's answer) runs under a session lock.
package session
