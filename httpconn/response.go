package httpconn

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// writeTimeout bounds writing an answer.
const writeTimeout = 10 * time.Second

// fastWriter is the fast path's ResponseWriter: the answer is collected
// and written in one write when the handler returns or flushes.
type fastWriter struct {
	s          *Server
	c          net.Conn
	br         *bufio.Reader
	h          http.Header
	status     int
	body       []byte
	out        []byte
	written    bool // the answer went out (a flush)
	hijacked   bool
	closeAfter bool
}

func (w *fastWriter) reset(c net.Conn, br *bufio.Reader) {
	w.c, w.br = c, br
	if w.h == nil {
		w.h = make(http.Header, 6)
	} else {
		clear(w.h)
	}
	w.status = 0
	w.body = w.body[:0]
	w.written, w.hijacked, w.closeAfter = false, false, false
}

// Header is the answer's header map.
func (w *fastWriter) Header() http.Header { return w.h }

// WriteHeader sets the status; the first final one counts.
func (w *fastWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

// Write appends to the body, which goes out when the handler returns.
func (w *fastWriter) Write(b []byte) (int, error) {
	if w.written || w.hijacked {
		return 0, http.ErrBodyNotAllowed
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

// FlushError writes the answer now (http.ResponseController's Flush).
// Nothing may be written after.
func (w *fastWriter) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.written {
		return nil
	}
	return w.writeOut()
}

// Flush is FlushError for http.Flusher.
func (w *fastWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection to the handler (a parked poll). The
// reader keeps bytes of pipelined requests; the handler takes them
// before it returns.
func (w *fastWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.written || w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	return w.c, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.c, 16)), nil
}

// finish writes the answer unless a flush did.
func (w *fastWriter) finish() error {
	if w.written {
		return nil
	}
	return w.writeOut()
}

func (w *fastWriter) writeOut() error {
	w.written = true
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	b := w.out[:0]
	if need := 384 + len(w.body); cap(b) < need {
		// One allocation for the head and body, not one per doubling
		// (a parked poll's answer starts from an empty writer).
		b = make([]byte, 0, need)
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	for k, vs := range w.h {
		if k == "Content-Length" || k == "Connection" || k == "Date" {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			for i := 0; i < len(v); i++ {
				c := v[i]
				if c == '\r' || c == '\n' {
					c = ' ' // as net/http's Header.Write does
				}
				b = append(b, c)
			}
			b = append(b, "\r\n"...)
		}
	}
	if status != http.StatusNoContent && status != http.StatusNotModified {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(w.body)), 10)
		b = append(b, "\r\n"...)
	}
	if w.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "Date: "...)
	b = appendDate(b)
	b = append(b, "\r\n\r\n"...)
	if status != http.StatusNoContent && status != http.StatusNotModified {
		b = append(b, w.body...)
	}
	w.out = b
	if cap(w.out) > fastBodyKeep {
		w.out = nil
	}
	if cap(w.body) > fastBodyKeep {
		w.body = nil
	}
	_ = w.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.c.Write(b)
	if err == nil {
		_ = w.c.SetWriteDeadline(time.Time{})
	}
	return err
}

// dateCache is the Date header of the current second.
type dateCache struct {
	sec int64
	s   string
}

var currentDate atomic.Pointer[dateCache]

func appendDate(b []byte) []byte {
	now := time.Now()
	d := currentDate.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateCache{sec: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
		currentDate.Store(d)
	}
	return append(b, d.s...)
}
