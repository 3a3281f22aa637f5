// Package relay is the HTTP face of a relay: it answers establish requests
// from routers over the bus by opening sessions, and serves the session
// endpoints /s (send), /c (close) and /j (receive, long-polled) for its
// fqdn and every subdomain of it. Sessions themselves live in the session
// package; the wire format is the jsonp package's.
package relay
