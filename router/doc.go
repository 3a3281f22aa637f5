// Package router is the HTTP face of a router: GET /create checks the
// request and its token, picks the relay with the most free capacity, asks
// it over the bus to dial the target, and answers where the session
// lives. Routers hold no state; any number may share a bus.
package router
