package relay

import (
	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/jsonp"
	"github.com/polysocket/polysocket/session"
)

// ParseSend exposes parseSend to the fuzz tests of package relay_test.
func (r *Relay) ParseSend(p jsonp.Params) (session.SendRequest, control.Code, string) {
	return r.parseSend(p, nil)
}

// Head is what ParseHead took from a request head.
type Head struct {
	Method, Path, Query, Host, ContentType string
	ContentLength                          int64
	Close                                  bool
}

// ParseHead exposes the fast path's head parser to the fuzz tests.
func ParseHead(b []byte, maxBody int64) (Head, bool) {
	h, ok := parseHead(b, maxBody)
	return Head{
		Method: h.method, Path: string(h.path), Query: string(h.query), Host: string(h.host),
		ContentType: string(h.contentType), ContentLength: h.contentLength, Close: h.close,
	}, ok
}
