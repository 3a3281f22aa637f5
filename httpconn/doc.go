// Package httpconn owns a server's client connections: it accepts them,
// reads plain HTTP/1.1 requests itself in one goroutine per connection
// (the fast loop), parks a connection whose answer comes later, and
// hands every connection it does not take to net/http.
//
// Why: every message costs a polysocket client two requests (its send
// and the poll that brings the answer), and net/http spends on each a
// background-read goroutine with its own read syscall, contexts, a
// Request with header maps, and deadline timers: on a 2-core machine that
// was a third of the relay's CPU per echo. The fast loop parses the head
// in place, calls the same handler net/http would with a small
// ResponseWriter, and writes the answer in one write. A held poll parks
// (Park): the connection leaves the loop with no goroutine, and its
// answer (Parked.Respond) writes and hands it back to a loop.
//
// It takes only what it parses exactly: GET or POST of HTTP/1.1 on a
// path Config.Accept takes (letters, digits, '-', '_' and '/' only), one
// Host, at most one Content-Length within Config.MaxBody, a head within
// 4 KiB ending in CRLF CRLF, valid header names and values, and no
// Transfer-Encoding, Expect or Upgrade. At anything else (another path
// or method, a header it does not take, HTTP/2 over TLS) the connection,
// with the bytes already read, goes to net/http for the rest of its
// life; net/http then answers, or refuses, exactly as it would have.
//
// A body is paid for only when it is wanted (Config.WantBody, from the
// head's path and Host): an unwanted one is left unread and the
// connection closed after the answer (lingerClose); a wanted body's
// buffer grows with the bytes that arrive (readBody).
//
// It knows no protocol: the handler, Accept and WantBody are the
// caller's.
//
// Goroutines: the accept loop and each connection's loop are the
// Server's, and Shutdown waits for them; net/http's are the
// http.Server's. A parked connection has no goroutine until it is
// answered; Respond runs on the caller's goroutine and starts the
// connection's next loop as the Server's.
package httpconn
