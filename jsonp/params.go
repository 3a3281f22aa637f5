package jsonp

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ParamError is a malformed request parameter; the handler answers 400
// with its message.
type ParamError struct {
	Param string // the parameter's name; empty for the request as a whole
	Msg   string
}

func (e *ParamError) Error() string {
	if e.Param == "" {
		return e.Msg
	}
	return e.Param + ": " + e.Msg
}

// ErrBodyTooLarge is returned by Parse for a POST body over the limit.
var ErrBodyTooLarge = errors.New("request body too large")

// Params are a request's parameters, each given at most once.
type Params map[string]string

// Names are the parameter names an endpoint knows. A parse given Names
// refuses any other name, and a repeated one, as soon as it sees it: only
// the known names can cost memory, so a body of a million distinct keys
// costs a scan and nothing more.
type Names []string

// has reports whether n lists name.
func (n Names) has(name string) bool {
	for _, k := range n {
		if k == name {
			return true
		}
	}
	return false
}

// escapedMax is the longest spelling of a known name: every byte
// percent-encoded. A longer key is unknown without being decoded.
func (n Names) escapedMax() int {
	m := 0
	for _, k := range n {
		m = max(m, 3*len(k))
	}
	return m
}

// MaxAnyParams bounds the parameters of a parse without Names (the
// router's /create): more distinct names are a *ParamError, so that a
// query of many keys cannot grow a map without bound.
const MaxAnyParams = 64

// Parse reads the parameters of r, of any names (at most MaxAnyParams):
// the query string and, for POST, a body of URL-encoded parameters
// whether its type is application/x-www-form-urlencoded or text/plain
// (what XDomainRequest and a preflight-free XHR send). A parameter given
// twice, in one place or in both, is a *ParamError. A body over maxBody
// bytes is ErrBodyTooLarge.
//
// Even with an error, Parse returns the parameters it could read, so the
// caller can still answer in the request's callback (JSONP errors must
// reach the callback). A "cb" that was itself given twice or malformed is
// returned as "", which Callback reports as invalid.
func Parse(r *http.Request, maxBody int64) (Params, error) {
	p := make(Params, 8)
	return p, ParseInto(p, r, maxBody, nil)
}

// ParseInto is Parse into p, which it empties first, taking only the
// names in known (nil: any name): a hot path can reuse one map (and its
// storage) for many requests. Values taken from p stay valid after p is
// reused.
func ParseInto(p Params, r *http.Request, maxBody int64, known Names) error {
	clear(p)
	if err := ParseQuery(p, r, known); err != nil {
		return err
	}
	return ParseBody(p, r, maxBody, known)
}

// ParseQuery adds the parameters of r's query string to p: the part of
// ParseInto that costs no more than the request head, so a caller can
// look at them (the callback, the socket) before it reads a body.
func ParseQuery(p Params, r *http.Request, known Names) error {
	return p.add(r.URL.RawQuery, known)
}

// ParseBody adds the parameters of a POST body to p, as ParseInto does;
// other methods have none. A body already in memory (one with an
// Unread() []byte method, as the relay's fast path gives) is read in
// place; any other is read as its bytes arrive, up to maxBody+1.
func ParseBody(p Params, r *http.Request, maxBody int64, known Names) error {
	if r.Method != http.MethodPost {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "text/plain") {
			return &ParamError{Msg: fmt.Sprintf("unsupported content type %q: send application/x-www-form-urlencoded or text/plain", ct)}
		}
	}
	if r.ContentLength > maxBody {
		return ErrBodyTooLarge // said so in the head: nothing to read
	}
	var body []byte
	if u, ok := r.Body.(interface{ Unread() []byte }); ok {
		body = u.Unread()
		if int64(len(body)) > maxBody {
			body = body[:maxBody+1]
		}
	} else {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return &ParamError{Msg: "reading body: " + err.Error()}
		}
	}
	if int64(len(body)) > maxBody {
		return ErrBodyTooLarge
	}
	return p.add(string(body), known)
}

// add parses one URL-encoded parameter list into p, taking only known
// names (nil: any, up to MaxAnyParams). The first error ends the parse:
// the rest of the list is only scanned for a "cb", so that the error can
// still reach the callback, and nothing else in it costs memory.
func (p Params) add(s string, known Names) error {
	escMax := known.escapedMax()
	for s != "" {
		var kv string
		kv, s, _ = cut(s, '&')
		if kv == "" {
			continue
		}
		k, v, _ := cut(kv, '=')
		if known != nil && len(k) > escMax {
			return p.failAt(&ParamError{Msg: "unknown parameter " + strconv.Quote(clip(k))}, s)
		}
		key, err := url.QueryUnescape(k)
		if err != nil {
			return p.failAt(&ParamError{Msg: "malformed parameter name encoding"}, s)
		}
		switch _, dup := p[key]; {
		case dup:
			if key == "cb" {
				p["cb"] = "" // an ambiguous callback is no callback
			}
			return p.failAt(&ParamError{Param: key, Msg: "given more than once"}, s)
		case known != nil && !known.has(key):
			return p.failAt(&ParamError{Msg: "unknown parameter " + strconv.Quote(clip(key))}, s)
		case known == nil && len(p) >= MaxAnyParams:
			return p.failAt(&ParamError{Msg: "more than " + strconv.Itoa(MaxAnyParams) + " parameters"}, s)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			if key == "cb" {
				p["cb"] = ""
			}
			return p.failAt(&ParamError{Param: key, Msg: "malformed percent-encoding"}, s)
		}
		p[key] = val
	}
	return nil
}

// failAt returns err after scanning the rest of the list for a callback:
// a first "cb" there is kept (its own errors make it invalid), every
// other parameter is skipped unread.
func (p Params) failAt(err error, rest string) error {
	for rest != "" {
		var kv string
		kv, rest, _ = cut(rest, '&')
		k, v, _ := cut(kv, '=')
		if len(k) > len("%63%62") || (k != "cb" && !strings.Contains(k, "%")) {
			continue
		}
		if key, kerr := url.QueryUnescape(k); kerr != nil || key != "cb" {
			continue
		}
		val, verr := url.QueryUnescape(v)
		if _, dup := p["cb"]; dup || verr != nil {
			p["cb"] = ""
			continue
		}
		p["cb"] = val
	}
	return err
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Callback returns the "cb" parameter: ok is false when it is present but
// not a valid callback name (including empty). Absent means plain JSON.
func (p Params) Callback() (cb string, ok bool) {
	cb, present := p["cb"]
	if !present {
		return "", true
	}
	return cb, ValidCallback(cb)
}

// Int returns the parameter name as a base-10 integer in [min, max];
// present is false when it was not given. A malformed or out-of-range
// value is a *ParamError.
func (p Params) Int(name string, min, max int64) (v int64, present bool, err error) {
	s, present := p[name]
	if !present {
		return 0, false, nil
	}
	v, err = strconv.ParseInt(s, 10, 64)
	if err != nil || s[0] == '+' {
		return 0, true, &ParamError{Param: name, Msg: fmt.Sprintf("%q is not an integer", clip(s))}
	}
	if v < min || v > max {
		return 0, true, &ParamError{Param: name, Msg: fmt.Sprintf("%d is out of range [%d, %d]", v, min, max)}
	}
	return v, true, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
