package httpconn

// Head is what ParseHead took from a request head.
type Head struct {
	Method, Path, Query, Host, ContentType string
	ContentLength                          int64
	Close                                  bool
}

// ParseHead exposes the head parser, taking every path, to the fuzz
// tests.
func ParseHead(b []byte, maxBody int64) (Head, bool) {
	h, ok := parseHead(b, maxBody, func([]byte) bool { return true })
	return Head{
		Method: h.method, Path: string(h.path), Query: string(h.query), Host: string(h.host),
		ContentType: string(h.contentType), ContentLength: h.contentLength, Close: h.close,
	}, ok
}
