package httpconn

import (
	"bytes"
	"net/http"
)

// head is what parseHead takes from a request head; its slices point
// into the head.
type head struct {
	method        string // GET or POST
	target        []byte
	path, query   []byte
	host          []byte
	contentType   []byte
	contentLength int64
	close         bool
}

// parseHead parses a request head ending in CRLF CRLF. It returns false
// for anything the fast loop does not take (see the package doc), a
// path accept refuses included.
func parseHead(b []byte, maxBody int64, accept func(path []byte) bool) (head, bool) {
	var h head
	line, rest, ok := cutLine(b)
	if !ok {
		return h, false
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		h.method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("POST ")):
		h.method, line = http.MethodPost, line[5:]
	default:
		return h, false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return h, false
	}
	h.target = line[:sp]
	if !parseTarget(&h) || accept == nil || !accept(h.path) {
		return h, false
	}
	hosts, lengths := 0, 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return h, false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validFieldName(line[:colon]) {
			return h, false // obs-fold, no name, bad name: net/http's
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validFieldValue(value) {
			return h, false
		}
		switch {
		case asciiEqualFold(name, "host"):
			hosts++
			if hosts > 1 || !validHost(value) {
				return h, false
			}
			h.host = value
		case asciiEqualFold(name, "content-length"):
			lengths++
			n, ok := parseLength(value)
			if lengths > 1 || !ok || n > maxBody {
				return h, false
			}
			h.contentLength = n
		case asciiEqualFold(name, "content-type"):
			if h.contentType != nil {
				return h, false
			}
			h.contentType = value
		case asciiEqualFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = trimOWS(tok)
				switch {
				case asciiEqualFold(tok, "close"):
					h.close = true
				case asciiEqualFold(tok, "upgrade"):
					return h, false
				}
			}
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "expect"),
			asciiEqualFold(name, "upgrade"), asciiEqualFold(name, "http2-settings"):
			return h, false
		}
	}
	if hosts != 1 || len(rest) != 0 {
		return h, false
	}
	return h, true
}

// parseTarget splits h.target into a path and its query. It takes only
// paths that need no cleaning or unescaping: '/' then letters, digits,
// '-', '_' and single slashes.
func parseTarget(h *head) bool {
	t := h.target
	path, query := t, []byte(nil)
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		path, query = t[:i], t[i+1:]
	}
	if len(path) < 2 || path[0] != '/' {
		return false
	}
	for i, c := range path {
		if c == '/' {
			if i > 0 && path[i-1] == '/' {
				return false
			}
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	for _, c := range query {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	h.path, h.query = path, query
	return true
}

// cutLine cuts b at its first CRLF; a bare LF or CR fails.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validFieldName reports whether b is an RFC 9110 token.
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !isTokenByte[c] {
			return false
		}
	}
	return true
}

var isTokenByte = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validFieldValue refuses control bytes other than tab.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost takes the host[:port] spellings of names and addresses only;
// net/http judges the rest.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// parseLength reads a Content-Length: digits only, no sign, no overflow.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
