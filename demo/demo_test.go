package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start serves a Demo on loopback; cleanup closes the Demo, then the server.
func start(t *testing.T) (*Demo, *httptest.Server) {
	t.Helper()
	d := Handler(zaptest.NewLogger(t))
	srv := httptest.NewServer(d)
	t.Cleanup(func() {
		_ = d.Close()
		srv.Close()
	})
	return d, srv
}

func dial(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/echo",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://elsewhere.example"}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(4 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func TestPage(t *testing.T) {
	_, srv := start(t)
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`src="/polysocket.js"`, `id="force"`, `id="transport"`, "forcePolyfill", "/echo"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("page lacks %q", want)
		}
	}
	resp, err = srv.Client().Get(srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404", resp.StatusCode)
	}
}

func TestEcho(t *testing.T) {
	_, srv := start(t)
	c := dial(t, srv)
	big := bytes.Repeat([]byte("x"), ReadLimit)
	tests := []struct {
		name string
		typ  websocket.MessageType
		data []byte
	}{
		{"text", websocket.MessageText, []byte("hello \u2028 😀")},
		{"empty", websocket.MessageText, nil},
		{"binary", websocket.MessageBinary, []byte{0, 1, 2, 255}},
		{"at read limit", websocket.MessageBinary, big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Write(ctx, tt.typ, tt.data); err != nil {
				t.Fatalf("write: %v", err)
			}
			typ, got, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if typ != tt.typ || !bytes.Equal(got, tt.data) {
				t.Errorf("echo: type %v, %d bytes; want %v, %d bytes", typ, len(got), tt.typ, len(tt.data))
			}
		})
	}

	// The client's close code comes back.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c2 := dial(t, srv)
	if err := c2.Close(4001, "bye"); err != nil {
		t.Errorf("close: %v", err)
	}

	// Over the read limit the target closes with 1009.
	c3 := dial(t, srv)
	if err := c3.Write(ctx, websocket.MessageBinary, append(big, 'x')); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, _, err := c3.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("over the limit: %v, want close 1009", err)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	d, srv := start(t)
	conns := []*websocket.Conn{dial(t, srv), dial(t, srv), dial(t, srv)}

	// Readers must run for the close handshake to complete.
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := c.Read(ctx)
			errs <- err
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Close()
	}()
	for range conns {
		if err := <-errs; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Errorf("client read ended with %v, want close 1001", err)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}

	// After Close, new connections are refused.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v, want 503", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Error("dial after Close hung")
	}
}
