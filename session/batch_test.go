package session_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polysocket/polysocket/session"
)

// burstServer is a WebSocket target written by hand: at the client's
// first frame it writes five text frames, m1 to m5, in one write, so
// they reach the relay's socket together.
func burstServer(t *testing.T) string {
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")); err != nil {
			return
		}
		buf := make([]byte, 512)
		if _, err := conn.Read(buf); err != nil { // the client's first frame
			return
		}
		var frames []byte
		for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
			frames = append(frames, 0x81, byte(len(m)))
			frames = append(frames, m...)
		}
		if _, err := conn.Write(frames); err != nil {
			return
		}
		_, _ = conn.Read(buf) // the relay's close frame: the connection ends
	}))
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// Messages that reach the socket together are answered together: the
// read loop answers a parked poll once it has taken everything already
// received, not at the first message.
func TestParkedPollTakesWhatArrivedTogether(t *testing.T) {
	target := burstServer(t) // stopped after the registry, which closes the session
	reg := newRegistry(t, session.Config{})
	s := open(t, reg, target)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answered := make(chan session.Batch, 1)
	_, parked, err := s.PollPark(ctx, session.PollRequest{TTL: 5 * time.Second, MaxBytes: 1 << 20, HasAck: true}, 0,
		func(b session.Batch, err error) {
			if err != nil {
				t.Errorf("answer: %v", err)
			}
			answered <- b
		})
	if err != nil || !parked {
		t.Fatalf("PollPark: parked %v, err %v", parked, err)
	}
	if err := s.Send(ctx, session.SendRequest{N: 1, Data: []byte("go")}); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-answered:
		var got []string
		for _, m := range b.Messages {
			got = append(got, string(m.Data))
		}
		if strings.Join(got, ",") != "m1,m2,m3,m4,m5" {
			t.Fatalf("the parked poll got %q, want all five", got)
		}
	case <-ctx.Done():
		t.Fatal("the parked poll was not answered")
	}
}

// A flood of tiny messages is bounded by what the queue holds in
// memory: each message counts 72 bytes besides its payload, so 64-byte
// messages fill MaxBuffered at about half the payload they would alone.
func TestTinyMessagesCountTheirOverhead(t *testing.T) {
	const maxBuffered, size = 64 << 10, 64
	target := floodServer(t, size) // stopped after the registry, which closes the session
	reg := newRegistry(t, session.Config{MaxBuffered: maxBuffered})
	s := open(t, reg, target)
	deadline := time.Now().Add(10 * time.Second)
	for !s.Paused() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !s.Paused() {
		t.Fatal("the session never stopped reading its target")
	}
	n := s.Buffered() / size
	if limit := int64(maxBuffered/(size+72) + 1); n > limit || n < limit-1 {
		t.Fatalf("%d messages queued, want %d (MaxBuffered %d, %d bytes each with 72 of bookkeeping)", n, limit, maxBuffered, size)
	}
}
