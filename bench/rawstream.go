package bench

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The stream target writes its frames itself. Through coder/websocket
// every message is its own write system call, and at C = 1,000 the
// target's writes took 92 % of the load tool's CPU: the figure measured
// the target, not the relay. Here an unpaced stream packs frames into
// one write of up to streamBatch bytes, as a server with a backlog
// would; a paced one (rate > 0) writes each message as it is due. The
// handshake and frames follow RFC 6455; the client's frames are read
// only to answer pings and closes.

// streamBatch is how many bytes of frames an unpaced stream writes at
// once.
const streamBatch = 16 << 10

// wsGUID is RFC 6455's key suffix.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// rawStream serves /stream?size=&rate=: it waits for one message, then
// pushes numbered payloads until the connection fails or the target
// closes.
func (t *target) rawStream(w http.ResponseWriter, r *http.Request) {
	t.wg.Add(1)
	defer t.wg.Done()
	if t.ctx.Err() != nil {
		http.Error(w, "closing", http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !hasToken(r.Header.Get("Connection"), "upgrade") ||
		r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
		http.Error(w, "a WebSocket handshake is expected", http.StatusBadRequest)
		return
	}
	size, _ := strconv.Atoi(r.URL.Query().Get("size"))
	perSec, _ := strconv.ParseFloat(r.URL.Query().Get("rate"), 64)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{})
	sum := sha1.Sum([]byte(key + wsGUID))
	s := &rawStreamConn{conn: conn}
	if err := s.write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		s.readLoop(brw.Reader, started)
	}()
	select {
	case <-started:
	case <-ctx.Done():
		<-done
		return
	}
	s.push(ctx, size, perSec, t.epoch)
	cancel()
	<-done
}

// rawStreamConn is one stream connection; writes are serialised, as
// the reader answers pings and closes while the pusher writes.
type rawStreamConn struct {
	conn net.Conn
	mu   sync.Mutex
}

func (s *rawStreamConn) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := s.conn.Write(b)
	return err
}

// push writes numbered messages until ctx ends or a write fails.
func (s *rawStreamConn) push(ctx context.Context, size int, perSec float64, epoch time.Time) {
	var lim *rate.Limiter
	if perSec > 0 {
		lim = rate.NewLimiter(rate.Limit(perSec), 1)
	}
	buf := make([]byte, 0, streamBatch+size+16)
	payload := make([]byte, 0, max(size, 64))
	for seq := int64(1); ctx.Err() == nil; seq++ {
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return
			}
		}
		payload = appendPayload(payload[:0], seq, time.Since(epoch), size)
		buf = appendFrame(buf, 0x1, payload)
		if lim == nil && len(buf) < streamBatch {
			continue
		}
		if err := s.write(buf); err != nil {
			return
		}
		buf = buf[:0]
		// A write that did not block leaves this loop runnable for its
		// whole time slice; a thousand of them starved the tool's own
		// clients for seconds.
		runtime.Gosched()
	}
}

// readLoop reads the client's frames: the first data frame starts the
// stream, a ping gets its pong, a close its close, and then the
// connection ends.
func (s *rawStreamConn) readLoop(br *bufio.Reader, started chan<- struct{}) {
	first := true
	for {
		op, payload, err := readClientFrame(br)
		if err != nil {
			return
		}
		switch op {
		case 0x8: // close: echo its code, then stop
			code := payload
			if len(code) > 2 {
				code = code[:2]
			}
			_ = s.write(appendFrame(nil, 0x8, code))
			return
		case 0x9: // ping
			if s.write(appendFrame(nil, 0xA, payload)) != nil {
				return
			}
		case 0x1, 0x2, 0x0:
			if first {
				first = false
				close(started)
			}
		}
	}
}

// appendFrame appends an unmasked final frame (the server's side).
func appendFrame(b []byte, op byte, payload []byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// maxClientFrame bounds what the stream target reads of a client frame.
const maxClientFrame = 1 << 20

var errClientFrame = errors.New("bad client frame")

// readClientFrame reads one masked frame and unmasks its payload.
func readClientFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	op = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if h[1]&0x80 == 0 || n > maxClientFrame {
		return 0, nil, errClientFrame // clients must mask
	}
	var mask [4]byte
	if _, err := io.ReadFull(br, mask[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return op, payload, nil
}

// hasToken reports whether a comma-separated header value holds tok.
func hasToken(v, tok string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(part), tok) {
			return true
		}
	}
	return false
}
