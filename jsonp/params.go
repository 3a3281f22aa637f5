package jsonp

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
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

// Parse reads the parameters of r: the query string and, for POST, a body
// of URL-encoded parameters whether its type is
// application/x-www-form-urlencoded or text/plain (what XDomainRequest and
// a preflight-free XHR send). A parameter given twice, in one place or in
// both, is a *ParamError. A body over maxBody bytes is ErrBodyTooLarge.
//
// Even with an error, Parse returns the parameters it could read, so the
// caller can still answer in the request's callback (JSONP errors must
// reach the callback). A "cb" that was itself given twice or malformed is
// returned as "", which Callback reports as invalid.
func Parse(r *http.Request, maxBody int64) (Params, error) {
	p := make(Params, 8)
	return p, ParseInto(p, r, maxBody)
}

// ParseInto is Parse into p, which it empties first: a hot path can
// reuse one map (and its storage) for many requests. Values taken from p
// stay valid after p is reused.
func ParseInto(p Params, r *http.Request, maxBody int64) error {
	clear(p)
	return p.parse(r, maxBody)
}

func (p Params) parse(r *http.Request, maxBody int64) error {
	if err := p.add(r.URL.RawQuery); err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "text/plain") {
			return &ParamError{Msg: fmt.Sprintf("unsupported content type %q: send application/x-www-form-urlencoded or text/plain", ct)}
		}
	}
	var body []byte
	if u, ok := r.Body.(interface{ Unread() []byte }); ok {
		// A body already in memory (the relay's fast path) is read in
		// place.
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
	if err := p.add(string(body)); err != nil {
		return err
	}
	return nil
}

// add parses one URL-encoded parameter list into p. It reads the whole
// list even after an error, keeping each first value, so a callback later
// in the list is still found; it returns the first error.
func (p Params) add(s string) error {
	var first error
	fail := func(key string, err error) {
		if first == nil {
			first = err
		}
		if key == "cb" {
			p["cb"] = "" // an ambiguous callback is no callback
		}
	}
	for s != "" {
		var kv string
		kv, s, _ = cut(s, '&')
		if kv == "" {
			continue
		}
		k, v, _ := cut(kv, '=')
		key, err := url.QueryUnescape(k)
		if err != nil {
			fail("", &ParamError{Msg: "malformed parameter name encoding"})
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			fail(key, &ParamError{Param: key, Msg: "malformed percent-encoding"})
			continue
		}
		if _, dup := p[key]; dup {
			fail(key, &ParamError{Param: key, Msg: "given more than once"})
			continue
		}
		p[key] = val
	}
	return first
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
