package session_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wsTarget is a real WebSocket target running handle on each
// connection; it stops, handlers finished, at the test's cleanup
// (registered now, so it runs after the cleanups registered later).
func wsTarget(t testing.TB, handle func(r *http.Request, c *websocket.Conn)) string {
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted before the handshake so cleanup's Wait cannot race it.
		wg.Add(1)
		defer wg.Done()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		handle(r, c)
	}))
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// echoServer is a real WebSocket target that echoes, closes with 4001
// when it gets "bye", and reports the close frame it got.
func echoServer(t *testing.T) (url string, closes <-chan websocket.CloseError) {
	ch := make(chan websocket.CloseError, 16)
	url = wsTarget(t, func(r *http.Request, c *websocket.Conn) {
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					select {
					case ch <- ce:
					default: // nobody is counting closes this many
					}
				}
				return
			}
			if string(b) == "bye" {
				_ = c.Close(4001, "bye")
				return
			}
			if err := c.Write(r.Context(), typ, b); err != nil {
				return
			}
		}
	})
	return url, ch
}

func newRegistry(t *testing.T, cfg session.Config) *session.Registry {
	reg, err := session.New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = reg.Close(ctx, 1001, "test over")
		reg.Stop()
	})
	return reg
}

func open(t *testing.T, reg *session.Registry, target string) *session.Session {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := reg.Open(ctx, session.OpenRequest{Target: target, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func poll(t *testing.T, s *session.Session, req session.PollRequest) session.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if req.TTL == 0 {
		req.TTL = 2 * time.Second
	}
	if req.MaxBytes == 0 {
		req.MaxBytes = 1 << 20
	}
	b, err := s.Poll(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSendWindowAndHeld(t *testing.T) {
	url, _ := echoServer(t)
	reg := newRegistry(t, session.Config{SendWindow: 4, MaxHeld: 10})
	s := open(t, reg, url)
	ctx := context.Background()
	if err := s.Send(ctx, session.SendRequest{N: 6, Data: []byte("x")}); !errors.Is(err, session.ErrWindow) {
		t.Fatalf("n=6 with window 4: %v", err)
	}
	if err := s.Send(ctx, session.SendRequest{N: 3, Data: []byte("0123456789")}); err != nil {
		t.Fatalf("held: %v", err)
	}
	if err := s.Send(ctx, session.SendRequest{N: 2, Data: []byte("y")}); !errors.Is(err, session.ErrHeldFull) {
		t.Fatalf("over MaxHeld: %v", err)
	}
	if err := s.Send(ctx, session.SendRequest{N: 2, Data: []byte("")}); err != nil {
		t.Fatalf("empty held: %v", err)
	}
	if err := s.Send(ctx, session.SendRequest{N: 1, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		b := poll(t, s, session.PollRequest{HasAck: true, Ack: int64(len(got))})
		for _, m := range b.Messages {
			got = append(got, string(m.Data))
		}
	}
	if strings.Join(got, "|") != "a||0123456789" {
		t.Fatalf("order %q", got)
	}
}

func TestFragmentTypeMismatch(t *testing.T) {
	url, _ := echoServer(t)
	reg := newRegistry(t, session.Config{})
	s := open(t, reg, url)
	ctx := context.Background()
	if err := s.Send(ctx, session.SendRequest{N: 1, More: true, Data: []byte("text")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, session.SendRequest{N: 2, Binary: true, Data: []byte{1}}); !errors.Is(err, session.ErrFragmentType) {
		t.Fatalf("mismatch: %v", err)
	}
	if err := s.Send(ctx, session.SendRequest{N: 3, Data: []byte("whole")}); err != nil {
		t.Fatal(err)
	}
	b := poll(t, s, session.PollRequest{})
	if len(b.Messages) != 1 || string(b.Messages[0].Data) != "whole" {
		t.Fatalf("got %+v", b.Messages)
	}
}

// Without acks, Delivered drops messages; a delivered close forgets the
// session.
func TestDeliveredWithoutAck(t *testing.T) {
	url, closes := echoServer(t)
	reg := newRegistry(t, session.Config{})
	s := open(t, reg, url)
	ctx := context.Background()
	if err := s.Send(ctx, session.SendRequest{Data: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	b := poll(t, s, session.PollRequest{})
	s.Delivered(b.Messages[0].Seq)
	if s.Buffered() != 0 {
		t.Fatalf("buffered %d after delivery", s.Buffered())
	}
	if err := s.CloseByClient(4005, "done"); err != nil {
		t.Fatal(err)
	}
	b = poll(t, s, session.PollRequest{})
	if len(b.Messages) != 1 || b.Messages[0].Kind != session.Close || b.Messages[0].Code != 4005 || b.Messages[0].Seq != 2 {
		t.Fatalf("close message %+v", b.Messages[0])
	}
	s.Delivered(b.Messages[0].Seq)
	if _, err := reg.Get(s.ID); !errors.Is(err, session.ErrUnknown) {
		t.Fatalf("session still known: %v", err)
	}
	select {
	case ce := <-closes:
		if ce.Code != 4005 || ce.Reason != "done" {
			t.Fatalf("target saw %v", ce)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("target saw no close")
	}
	if err := s.Send(ctx, session.SendRequest{Data: []byte("late")}); !errors.Is(err, session.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestAckBeyondLast(t *testing.T) {
	url, _ := echoServer(t)
	reg := newRegistry(t, session.Config{})
	s := open(t, reg, url)
	_, err := s.Poll(context.Background(), session.PollRequest{HasAck: true, Ack: 1})
	if !errors.Is(err, session.ErrAck) {
		t.Fatalf("ack 1 with nothing sent: %v", err)
	}
}

// Registry.Close ends every session with the code: the target gets it,
// and OnEnd runs once for each.
func TestRegistryCloseEndsAll(t *testing.T) {
	url, closes := echoServer(t)
	var mu sync.Mutex
	ended := map[string]int{}
	reg, err := session.New(session.Config{OnEnd: func(s *session.Session, code int) {
		mu.Lock()
		ended[s.ID]++
		mu.Unlock()
	}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, open(t, reg, url).ID)
	}
	if reg.Len() != 5 {
		t.Fatalf("Len %d", reg.Len())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Close(ctx, 1001, "shutdown"); err != nil {
		t.Fatal(err)
	}
	reg.Stop()
	for i := 0; i < 5; i++ {
		select {
		case ce := <-closes:
			if ce.Code != websocket.StatusGoingAway {
				t.Fatalf("target saw %v", ce)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a target saw no close")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if ended[id] != 1 {
			t.Fatalf("OnEnd ran %d times for a session", ended[id])
		}
	}
	if _, err := reg.Open(ctx, session.OpenRequest{Target: url}); !errors.Is(err, session.ErrRegistryClosed) {
		t.Fatalf("open after close: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	reg := newRegistry(t, session.Config{DialTimeout: 2 * time.Second})
	redirect := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:1/", http.StatusFound))
	defer redirect.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler()) // a certificate nobody trusts
	defer tlsSrv.Close()
	for name, tc := range map[string]struct {
		target string
		kind   session.DialKind
	}{
		"refused":  {"ws://127.0.0.1:1/", session.DialConnect},
		"redirect": {"ws" + strings.TrimPrefix(redirect.URL, "http"), session.DialRedirect},
		"not ws":   {"ws" + strings.TrimPrefix(plain.URL, "http"), session.DialHandshake},
		"tls":      {"wss" + strings.TrimPrefix(tlsSrv.URL, "https"), session.DialTLS},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := reg.Open(context.Background(), session.OpenRequest{Target: tc.target})
			var de *session.DialError
			if !errors.As(err, &de) || de.Kind != tc.kind {
				t.Fatalf("got %v, want a DialError of kind %d", err, tc.kind)
			}
		})
	}
}

// A target message over MaxMessage ends the session: the client's close
// message is 1009, as the WebSocket library's ErrMessageTooBig says.
func TestTargetMessageTooBig(t *testing.T) {
	url := wsTarget(t, func(r *http.Request, c *websocket.Conn) {
		_ = c.Write(r.Context(), websocket.MessageText, make([]byte, 2048))
		_, _, _ = c.Read(r.Context())
	})
	reg := newRegistry(t, session.Config{MaxMessage: 1024})
	s := open(t, reg, url)
	b := poll(t, s, session.PollRequest{TTL: 5 * time.Second, MaxBytes: 1 << 20})
	if len(b.Messages) != 1 || b.Messages[0].Kind != session.Close || b.Messages[0].Code != int(websocket.StatusMessageTooBig) {
		t.Fatalf("got %+v, want a close message 1009", b.Messages)
	}
}

// Close waits for the answer of a parked poll that the session's end
// delivers: the goroutine that runs it is the registry's.
func TestCloseWaitsForParkedAnswers(t *testing.T) {
	url, _ := echoServer(t)
	reg := newRegistry(t, session.Config{})
	s := open(t, reg, url)
	release := make(chan struct{})
	answered := make(chan error, 1)
	_, parked, err := s.PollPark(context.Background(), session.PollRequest{TTL: time.Minute, MaxBytes: 1 << 20}, 0, func(_ session.Batch, err error) {
		<-release
		answered <- err
	})
	if err != nil || !parked {
		t.Fatalf("PollPark: parked %v, %v", parked, err)
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- reg.Close(ctx, 1001, "bye")
	}()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a parked poll's answer ran", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
}

// WaitUntil wakes at the changes of the counts: a session's end (live)
// and its removal once its close message is collected (known).
func TestWaitUntilCounts(t *testing.T) {
	url, _ := echoServer(t)
	reg := newRegistry(t, session.Config{})
	s := open(t, reg, url)
	if c := reg.Counts(); c != (session.Counts{Live: 1, Known: 1}) {
		t.Fatalf("counts %+v", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waited := make(chan error, 2)
	go func() { waited <- reg.WaitUntil(ctx, func(c session.Counts) bool { return c.Live == 0 }) }()
	go func() { waited <- reg.WaitUntil(ctx, func(c session.Counts) bool { return c.Known == 0 }) }()
	if err := s.CloseByClient(1000, "done"); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	// The close message, collected without acks, forgets the session.
	b := poll(t, s, session.PollRequest{})
	s.Delivered(b.Messages[len(b.Messages)-1].Seq)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := reg.WaitUntil(short, func(c session.Counts) bool { return c.Live > 0 }); err != context.DeadlineExceeded {
		t.Fatalf("waiting for what does not come: %v", err)
	}
}
