package relay_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/session"
)

// rawPoll writes a poll request on conn and reads its answer.
func rawPoll(t *testing.T, conn net.Conn, br *bufio.Reader, s *testenv.Session, query, extra string, send func()) (*http.Response, string) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /j/" + s.Socket + "?" + query + " HTTP/1.1\r\nHost: " + s.Host + "\r\n" + extra + "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if send != nil {
		send()
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the poll answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// liveSession is the relay's session for socket.
func liveSession(t *testing.T, st *testenv.Stack, socket string) *session.Session {
	t.Helper()
	s, err := st.Relay.Registry().Get(socket)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A held poll is parked outside net/http, answered with a complete
// response on its raw connection, and the connection serves the next
// requests: parked again, then through net/http with Connection: close.
func TestParkedPollAnswerAndHandback(t *testing.T) {
	st, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 20*time.Second)
	conn, br := rawConn(t, st)
	sess := liveSession(t, st, s.Socket)
	resp, body := rawPoll(t, conn, br, s, "ttl=10000&cb=cb", "", func() {
		testenv.WaitFor(t, 5*time.Second, "the poll to be parked", sess.Parked)
		code, err := s.SendText(ctx, "hi")
		mustStatus(t, "send", code, err, http.StatusCreated)
	})
	if resp.StatusCode != http.StatusOK || resp.ProtoMinor != 1 || resp.Close {
		t.Fatalf("status %d, proto %s, close %v", resp.StatusCode, resp.Proto, resp.Close)
	}
	for k, want := range map[string]string{
		"Content-Type":                "application/javascript; charset=utf-8",
		"X-Content-Type-Options":      "nosniff",
		"Cache-Control":               "no-store",
		"Access-Control-Allow-Origin": "*",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
		t.Errorf("Date %q: %v", resp.Header.Get("Date"), err)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(body))
	}
	if want := `/**/cb({"ok":true,"messages":[{"type":"text","data":"hi","seq":1}]});`; body != want {
		t.Fatalf("body %s, want %s", body, want)
	}
	// Without an ack the message counted as delivered once written.
	testenv.WaitFor(t, 5*time.Second, "the message to be delivered", func() bool { return sess.Buffered() == 0 })

	// The same connection, handed back: a heartbeat from a parked poll.
	resp, body = rawPoll(t, conn, br, s, "ttl=50", "", nil)
	if resp.StatusCode != http.StatusOK || body != `{"ok":true,"messages":[{"type":"heartbeat"}]}` {
		t.Fatalf("second poll: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	// Connection: close is not parked; net/http answers and closes.
	resp, body = rawPoll(t, conn, br, s, "ttl=50", "Connection: close\r\n", nil)
	if resp.StatusCode != http.StatusOK || !resp.Close || !strings.Contains(body, "heartbeat") {
		t.Fatalf("third poll: %d close %v %s", resp.StatusCode, resp.Close, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after Connection: close, read %v; want EOF", err)
	}
}

// A parked poll whose client went away is seen just before the answer
// is written: without an ack its messages stay for the next poll.
func TestParkedPollClientGone(t *testing.T) {
	st, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 20*time.Second)
	conn, _ := rawConn(t, st)
	sess := liveSession(t, st, s.Socket)
	if _, err := io.WriteString(conn, "GET /j/"+s.Socket+"?ttl=10000 HTTP/1.1\r\nHost: "+s.Host+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the poll to be parked", sess.Parked)
	conn.Close()
	code, err := s.SendText(ctx, "kept")
	mustStatus(t, "send", code, err, http.StatusCreated)
	testenv.WaitFor(t, 5*time.Second, "the parked poll to be answered", func() bool { return !sess.Polling() })
	got := s.Collect(t, 1, 10*time.Second)
	if got[0].Data != "kept" {
		t.Fatalf("got %+v", got)
	}
}

// The sweep finds a parked poll whose client closed its connection and
// ends it, so the session's idle timeout runs from then, not from the
// poll's TTL: the target hears 1001 within seconds, not after 20 s. A
// parked poll whose client is still there is left alone, and answered.
func TestSweepEndsParkedPollsOfGoneClients(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{
		Relay:   relay.Config{SweepInterval: 100 * time.Millisecond},
		Session: session.Config{IdleTimeout: time.Second, CloseGrace: 300 * time.Millisecond},
	})
	var tg *testenv.Target
	tg = testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) { tg.RecordingEcho(ctx, c) }})
	c := &testenv.Client{Base: st.URL}
	gone, stays := c.Open(t, tg.URL, nil), c.Open(t, tg.URL, nil)
	goneSess, staysSess := liveSession(t, st, gone.Socket), liveSession(t, st, stays.Socket)
	goneConn, _ := rawConn(t, st)
	staysConn, staysBR := rawConn(t, st)
	for _, x := range []struct {
		conn net.Conn
		s    *testenv.Session
		sess *session.Session
	}{{goneConn, gone, goneSess}, {staysConn, stays, staysSess}} {
		if _, err := io.WriteString(x.conn, "GET /j/"+x.s.Socket+"?ttl=20000&a=0 HTTP/1.1\r\nHost: "+x.s.Host+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 5*time.Second, "the poll to be parked", x.sess.Parked)
	}
	// Past the idle timeout, both are still there: a held poll counts.
	time.Sleep(1500 * time.Millisecond)
	if goneSess.Ended() || staysSess.Ended() {
		t.Fatal("a session with a parked poll ended at the idle timeout")
	}
	goneConn.Close()
	testenv.WaitFor(t, 10*time.Second, "the target to hear 1001 from the session whose client went", func() bool {
		cl := tg.Closes()
		return len(cl) == 1 && cl[0].Code == websocket.StatusGoingAway
	})
	if !staysSess.Parked() || staysSess.Ended() {
		t.Fatal("the sweep took the poll of a client that is still there")
	}
	ctx := ctxT(t, 10*time.Second)
	code, err := stays.SendText(ctx, "still here")
	mustStatus(t, "send", code, err, http.StatusCreated)
	resp, err := http.ReadResponse(staysBR, nil)
	if err != nil {
		t.Fatalf("reading the parked poll's answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"still here"`) {
		t.Fatalf("parked poll answered %d %s", resp.StatusCode, body)
	}
}

// With ParkPolls off, held polls stay in net/http and behave the same.
func TestEchoWithoutParking(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{NoPark: true})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	c := &testenv.Client{Base: st.URL}
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	for _, text := range []string{"one", "two"} {
		code, err := s.SendText(ctx, text)
		mustStatus(t, "send", code, err, http.StatusCreated)
		if got := s.Collect(t, 1, 10*time.Second); got[0].Data != text {
			t.Fatalf("echo of %q: %+v", text, got)
		}
	}
	r, code, err := s.Poll(ctx, 50*time.Millisecond)
	mustStatus(t, "poll", code, err, http.StatusOK)
	if len(r.Messages) != 1 || r.Messages[0].Type != "heartbeat" {
		t.Fatalf("want a heartbeat, got %+v", r)
	}
}
