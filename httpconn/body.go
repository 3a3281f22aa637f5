package httpconn

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"slices"
	"time"
)

// bodyReader is a request body that costs no allocation to attach.
type bodyReader struct {
	bytes.Reader
	b []byte
}

func (*bodyReader) Close() error { return nil }

// Reset reads b from its start.
func (r *bodyReader) Reset(b []byte) {
	r.b = b
	r.Reader.Reset(b)
}

// Unread is what is left to read, without a copy (jsonp reads it so).
func (r *bodyReader) Unread() []byte { return r.b[len(r.b)-r.Len():] }

// bodyChunk is the least a body buffer grows by.
const bodyChunk = 4 << 10

// readBody reads an n-byte body from br into buf (from its start). The
// buffer grows with the bytes that arrive, doubling, never to more than
// n: a head announcing megabytes costs nothing until they come, and
// then at most twice what came.
func readBody(br *bufio.Reader, buf []byte, n int) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(cap(buf), bodyChunk)))
		}
		m, err := br.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			return buf, err
		}
	}
	return buf, nil
}

// lingerTime and lingerBytes bound how long, and how much, lingerClose
// drains: as net/http does, so that the answer is not lost to the reset
// a close with unread data sends.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// lingerClose closes a connection whose request body was left unread:
// the answer is followed by a FIN, then what the client still sends is
// read and dropped for a little while (no memory: io.Discard), so that
// the close does not reset the connection before the client read the
// answer.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.CopyN(io.Discard, c, lingerBytes)
	}
	_ = c.Close()
}
