package relay_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
)

// rawConn dials the stack's listener.
func rawConn(t *testing.T, st *testenv.Stack) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", st.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	return conn, bufio.NewReader(conn)
}

// readAnswer reads one final answer (skipping 100 Continue) and its body.
func readAnswer(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading an answer: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusContinue {
			return resp, string(body)
		}
	}
}

// Pipelined requests are answered in order on one connection, and a
// poll on it then brings their echoes.
func TestFastPathPipelined(t *testing.T) {
	st, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	conn, br := rawConn(t, st)
	var reqs strings.Builder
	for n := 1; n <= 3; n++ {
		body := "t=t&d=m" + strconv.Itoa(n) + "&n=" + strconv.Itoa(n)
		reqs.WriteString("POST /s/" + s.Socket + " HTTP/1.1\r\nHost: " + s.Host + "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	}
	if _, err := io.WriteString(conn, reqs.String()); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		resp, body := readAnswer(t, br)
		if resp.StatusCode != http.StatusCreated || body != `{"ok":true}` || resp.Close {
			t.Fatalf("send %d: %d %s (close %v)", n, resp.StatusCode, body, resp.Close)
		}
	}
	var got []string
	for ack := 0; len(got) < 3; {
		_, body := rawPoll(t, conn, br, s, "ttl=5000&a="+strconv.Itoa(ack), "", nil)
		for _, m := range []string{"m1", "m2", "m3"} {
			if strings.Contains(body, `"data":"`+m+`"`) {
				got = append(got, m)
				ack++
			}
		}
	}
	if strings.Join(got, ",") != "m1,m2,m3" {
		t.Fatalf("echoes %v", got)
	}
}

// A raw request answered by the fast path and by net/http alone must
// read the same: status, body, the headers a client looks at, and
// whether the connection closes. {id} stands for a live socket, the
// first "Host: h" for its host.
func TestFastPathAnswersAsNetHTTP(t *testing.T) {
	long := strings.Repeat("x", 5000)
	cases := []struct{ name, req string }{
		{"send", "POST /s/{id} HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nt=t&d=hi&n=1"},
		{"send get jsonp", "GET /s/{id}?t=t&d=hi&n=1&cb=cb HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"send bad n", "GET /s/{id}?t=t&d=hi&n=x&cb=cb HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"poll now", "GET /j/{id}?ttl=0&cb=cb HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"poll bad ack", "GET /j/{id}?ttl=0&a=99 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"poll post", "POST /j/{id} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nttl=0"},
		{"close bad code", "GET /c/{id}?code=2 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"unknown socket", "GET /j/nosuch?ttl=0&cb=cb HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"bad callback", "GET /j/{id}?ttl=0&cb=alert(1) HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"bad content type", "POST /s/{id} HTTP/1.1\r\nHost: h\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nt=t"},
		{"chunked", "POST /s/{id} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n7\r\nt=t&d=x\r\n4\r\n&n=1\r\n0\r\n\r\n"},
		{"expect", "POST /s/{id} HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\nt=t&d=&n=1"},
		{"bare LF", "GET /j/{id}?ttl=0 HTTP/1.1\nHost: h\n\n"},
		{"big head", "GET /j/{id}?ttl=0 HTTP/1.1\r\nHost: h\r\nX-Pad: " + long + "\r\n\r\n"},
		{"HTTP/1.0", "GET /j/{id}?ttl=0 HTTP/1.0\r\nHost: h\r\n\r\n"},
		{"connection close", "GET /j/{id}?ttl=0 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"no host", "GET /j/{id}?ttl=0 HTTP/1.1\r\n\r\n"},
		{"two hosts", "GET /j/{id}?ttl=0 HTTP/1.1\r\nHost: h\r\nHost: g\r\n\r\n"},
		{"bad host", "GET /j/{id}?ttl=0 HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"space before colon", "GET /j/{id}?ttl=0 HTTP/1.1\r\nHost : h\r\n\r\n"},
		{"obs-fold", "GET /j/{id}?ttl=0 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n"},
		{"two lengths", "POST /s/{id} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nt=t&"},
		{"signed length", "POST /s/{id} HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nt=t"},
		{"length and chunked", "POST /s/{id} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"dot segment", "GET /s/../healthz HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"escaped id", "GET /j/%6eosuch?ttl=0 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"put method", "PUT /j/{id}?ttl=0 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{"options", "OPTIONS /s/{id} HTTP/1.1\r\nHost: h\r\nOrigin: http://o\r\n\r\n"},
		{"forged host", "GET /s/{id}?t=t&d=hi&n=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n"},
		{"unknown socket with a body", "POST /s/nosuch HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nt=t&d=hi&n=1"},
		{"unknown parameter", "GET /s/{id}?t=t&d=hi&n=1&x=1 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"parameter bomb", "POST /s/{id} HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n0=&1=&2=&3=&"},
		{"control byte in value", "GET /j/{id}?ttl=0 HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n"},
		{"healthz", "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"},
	}
	fast := testenv.NewStack(t, testenv.StackOptions{})
	plain := testenv.NewStack(t, testenv.StackOptions{NetHTTP: true})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	type answer struct {
		status int
		body   string
		hdr    string
		closed bool
	}
	ask := func(t *testing.T, st *testenv.Stack, raw string) answer {
		s := (&testenv.Client{Base: st.URL}).Open(t, tg.URL, nil)
		conn, br := rawConn(t, st)
		raw = strings.ReplaceAll(raw, "{id}", s.Socket)
		raw = strings.Replace(raw, "Host: h\r\n", "Host: "+s.Host+"\r\n", 1)
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatal(err)
		}
		resp, body := readAnswer(t, br)
		var hdr []string
		for _, k := range []string{"Content-Type", "Cache-Control", "X-Content-Type-Options", "Access-Control-Allow-Origin", "Allow", "Location"} {
			hdr = append(hdr, k+"="+resp.Header.Get(k))
		}
		// Whether the server closes: a second request gets no answer.
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
		_, err := http.ReadResponse(br, nil)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and no close within 300ms: %v", err)
		}
		return answer{resp.StatusCode, strings.ReplaceAll(body, s.Socket, "{id}"), strings.Join(hdr, " "), err != nil}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, want := ask(t, fast, tc.req), ask(t, plain, tc.req)
			if got != want {
				t.Errorf("fast path:\n%+v\nnet/http:\n%+v", got, want)
			}
		})
	}
}

// A session request after another kind on one connection works: once
// net/http has the connection it keeps it.
func TestFastPathMixedConnection(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{Mount: func(mux *http.ServeMux) {
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	}})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	c := &testenv.Client{Base: st.URL}
	s := c.Open(t, tg.URL, nil)
	conn, br := rawConn(t, st)
	for i, req := range []string{
		"GET /j/" + s.Socket + "?ttl=0 HTTP/1.1\r\nHost: " + s.Host + "\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /s/" + s.Socket + "?t=t&d=x&n=1 HTTP/1.1\r\nHost: " + s.Host + "\r\n\r\n",
	} {
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, body := readAnswer(t, br)
		if resp.StatusCode >= 300 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
}

// A client that sends half a head is cut off after the header timeout,
// and an idle kept-alive connection after the idle timeout.
func TestFastPathTimeouts(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{HeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	for _, tc := range []struct{ name, first string }{
		{"slow head", "GET /j/abc?ttl=0 HTTP/1.1\r\nHost: h\r\n"},
		{"idle", "GET /j/abc?ttl=0 HTTP/1.1\r\nHost: h\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, br := rawConn(t, st)
			if _, err := io.WriteString(conn, tc.first); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, err := br.ReadByte(); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatal("the relay kept the connection open for 5s")
					}
					break
				}
			}
			if d := time.Since(start); d < 250*time.Millisecond {
				t.Errorf("closed after %v, before the timeout", d)
			}
		})
	}
}

// A handler panic closes its connection only; the server goes on.
func TestFastPathPanic(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{Mount: func(mux *http.ServeMux) {
		mux.HandleFunc("/s/boom", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	}})
	conn, br := rawConn(t, st)
	_, _ = io.WriteString(conn, "GET /s/boom HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Fatal("an answer from a panicking handler")
	}
	conn2, br2 := rawConn(t, st)
	_, _ = io.WriteString(conn2, "GET /j/nosuch?ttl=0 HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, body := readAnswer(t, br2); !strings.Contains(body, `"code":"socket"`) {
		t.Fatalf("after the panic: %d %s", resp.StatusCode, body)
	}
}

// Shutdown closes idle kept-alive connections at once.
func TestFastPathShutdownClosesIdle(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{})
	conn, br := rawConn(t, st)
	_, _ = io.WriteString(conn, "GET /j/nosuch?ttl=0 HTTP/1.1\r\nHost: h\r\n\r\n")
	readAnswer(t, br)
	if err := st.Conns.Shutdown(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("idle connection after Shutdown: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
