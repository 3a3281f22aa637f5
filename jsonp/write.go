package jsonp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/polysocket/polysocket/control"
)

// Header values, made once: assigning them to the header map directly
// skips Set's key canonicalization and its []string per call. The
// slices have capacity 1, so an Add elsewhere copies rather than writes
// into them; net/http copies the values before it writes them.
var (
	valNosniff    = []string{"nosniff"}[:1:1]
	valNoStore    = []string{"no-store"}[:1:1]
	valAnyOrigin  = []string{"*"}[:1:1]
	valJSON       = []string{"application/json"}[:1:1]
	valJavaScript = []string{"application/javascript; charset=utf-8"}[:1:1]
	valPlainText  = []string{"text/plain; charset=utf-8"}[:1:1]
)

// SetHeaders sets the headers every answer carries: no sniffing, no
// caching, and CORS for any origin (the socket id is the credential; no
// cookies are used).
func SetHeaders(h http.Header) {
	h["X-Content-Type-Options"] = valNosniff
	h["Cache-Control"] = valNoStore
	h["Access-Control-Allow-Origin"] = valAnyOrigin
}

// smallLengths are the Content-Length values below len(smallLengths),
// made once, so most answers need no strconv.Itoa and []string each.
var smallLengths = func() [][]string {
	vals := make([]string, 2048)
	for i := range vals {
		vals[i] = strconv.Itoa(i)
	}
	out := make([][]string, len(vals))
	for i := range vals {
		out[i] = vals[i : i+1 : i+1]
	}
	return out
}()

func contentLength(n int) []string {
	if n < len(smallLengths) {
		return smallLengths[n]
	}
	return []string{strconv.Itoa(n)}
}

// bufs are answer buffers for Write's JSONP wrapping.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Write answers with obj, a JSON object already encoded: as
// `/**/cb(obj);` JavaScript when cb is not empty, else as plain JSON.
// cb must have passed ValidCallback.
func Write(w http.ResponseWriter, cb string, status int, obj []byte) {
	if cb == "" {
		WriteBody(w, cb, status, obj)
		return
	}
	bp := bufs.Get().(*[]byte)
	b := AppendOpen((*bp)[:0], cb)
	b = append(b, obj...)
	b = AppendClose(b, cb)
	WriteBody(w, cb, status, b)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		bufs.Put(bp)
	}
}

// AppendOpen appends what comes before the object of an answer:
// `/**/cb(` for JSONP (cb not empty), nothing for plain JSON.
func AppendOpen(dst []byte, cb string) []byte {
	if cb == "" {
		return dst
	}
	dst = append(dst, "/**/"...)
	dst = append(dst, cb...)
	return append(dst, '(')
}

// AppendClose appends what comes after the object: `);` for JSONP.
func AppendClose(dst []byte, cb string) []byte {
	if cb == "" {
		return dst
	}
	return append(dst, ");"...)
}

// WriteBody answers with body, made of AppendOpen, a JSON object and
// AppendClose for the same cb: it lets a caller build the whole answer
// in its own buffer.
func WriteBody(w http.ResponseWriter, cb string, status int, body []byte) {
	h := w.Header()
	SetHeaders(h)
	if cb == "" {
		h["Content-Type"] = valJSON
	} else {
		h["Content-Type"] = valJavaScript
	}
	h["Content-Length"] = contentLength(len(body))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteValue answers with v encoded by encoding/json, which escapes
// U+2028 and U+2029 (line terminators in old JavaScript engines).
func WriteValue(w http.ResponseWriter, cb string, status int, v any) {
	obj, err := json.Marshal(v)
	if err != nil {
		WriteError(w, cb, http.StatusInternalServerError, control.CodeInternal, "encoding the answer failed")
		return
	}
	Write(w, cb, status, obj)
}

// ErrorBody is the object of an error answer.
type ErrorBody struct {
	OK    bool         `json:"ok"`
	Error string       `json:"error"`
	Code  control.Code `json:"code"`
}

// WriteError answers {ok:false, error:msg, code}. A JSONP answer (cb not
// empty) carries jsonpStatus: the router uses 200 so the callback runs,
// the relay the seed protocol's status so a script tag's error event
// fires. A plain JSON answer carries the code's own status.
func WriteError(w http.ResponseWriter, cb string, jsonpStatus int, code control.Code, msg string) {
	status := code.HTTPStatus()
	if cb != "" {
		status = jsonpStatus
	}
	obj, _ := json.Marshal(ErrorBody{Error: msg, Code: code})
	Write(w, cb, status, obj)
}

// WriteBadCallback answers an invalid callback with 400 and a plain-text
// body that does not reflect it.
func WriteBadCallback(w http.ResponseWriter) {
	h := w.Header()
	SetHeaders(h)
	h["Content-Type"] = valPlainText
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte("invalid callback name: cb must be a JavaScript identifier path (letters, digits, _ and $, dot-separated), at most 128 characters\n"))
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a JSON string. It escapes what JSON
// requires, U+2028 and U+2029, and <, > and & (so no answer can end a
// script element); invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
