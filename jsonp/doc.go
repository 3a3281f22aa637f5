// Package jsonp is polysocket's HTTP wire format: JSONP callback
// validation, request parameter parsing (query string and POST bodies),
// and answers written as JSONP (`/**/cb({...});`) or, without a callback,
// as plain JSON, always with the protocol's security and CORS headers.
//
// It knows nothing of sessions or routing; relay and router use it to
// speak the protocol.
package jsonp
