package session_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/session"
)

// rawTarget is a loopback TCP server run by hand (see
// testenv.RawTarget); it returns its ws:// URL.
func rawTarget(t *testing.T, serve func(c net.Conn)) string {
	return "ws://" + testenv.RawTarget(t, serve) + "/"
}

// The bytes a target sends right behind its 101, in the same segment,
// are the first WebSocket frame: the handshake's reader must hand them
// on, not drop them.
func TestDialKeepsBytesAfterHandshake(t *testing.T) {
	target := rawTarget(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		answer := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n" +
			"\x81\x02hi" // an unmasked text frame "hi"
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
		// The session's close frame ends the connection at once,
		// without the close handshake's wait.
		_, _ = c.Read(make([]byte, 1))
	})
	reg := newRegistry(t, session.Config{DialTimeout: 5 * time.Second, PingInterval: -1})
	s := open(t, reg, target)
	b := poll(t, s, session.PollRequest{})
	if len(b.Messages) != 1 || string(b.Messages[0].Data) != "hi" || b.Messages[0].Kind != session.Text {
		t.Fatalf("got %+v, want the text message hi", b.Messages)
	}
}

// A target that takes the connection and never answers fails the dial
// at the dial timeout, as a timeout.
func TestDialTimeoutWithoutAnswer(t *testing.T) {
	target := rawTarget(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	reg := newRegistry(t, session.Config{DialTimeout: 300 * time.Millisecond})
	_, err := reg.Open(context.Background(), session.OpenRequest{Target: target})
	var de *session.DialError
	if !errors.As(err, &de) || de.Kind != session.DialTimeout {
		t.Fatalf("got %v, want a DialError that timed out", err)
	}
}
