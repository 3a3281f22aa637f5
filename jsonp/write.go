package jsonp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/polysocket/polysocket/control"
)

// SetHeaders sets the headers every answer carries: no sniffing, no
// caching, and CORS for any origin (the socket id is the credential; no
// cookies are used).
func SetHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Access-Control-Allow-Origin", "*")
}

// Write answers with obj, a JSON object already encoded: as
// `/**/cb(obj);` JavaScript when cb is not empty, else as plain JSON.
// cb must have passed ValidCallback.
func Write(w http.ResponseWriter, cb string, status int, obj []byte) {
	h := w.Header()
	SetHeaders(h)
	if cb == "" {
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(obj)))
		w.WriteHeader(status)
		_, _ = w.Write(obj)
		return
	}
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(obj)+len(cb)+7))
	w.WriteHeader(status)
	buf := make([]byte, 0, len(cb)+7+len(obj))
	buf = append(buf, "/**/"...)
	buf = append(buf, cb...)
	buf = append(buf, '(')
	buf = append(buf, obj...)
	buf = append(buf, ");"...)
	_, _ = w.Write(buf)
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
	h.Set("Content-Type", "text/plain; charset=utf-8")
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
