package httpconn_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/httpconn"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoHandler answers what it read of the request; /park/ requests are
// parked and answered by park.
func echoHandler(park func(*httpconn.Parked, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		text := fmt.Sprintf("%s %s ?%s host=%s type=%s len=%d body=%s", r.Method, r.URL.Path, r.URL.RawQuery,
			r.Host, r.Header.Get("Content-Type"), r.ContentLength, body)
		if strings.HasPrefix(r.URL.Path, "/park/") && park != nil {
			if p, ok := httpconn.Park(w, r); ok {
				go park(p, text)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Seen", "yes")
		_, _ = io.WriteString(w, text)
	})
}

// serve starts a Server on loopback; accept nil: net/http alone.
func serve(t *testing.T, accept func([]byte) bool, park func(*httpconn.Parked, string)) (*httpconn.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: echoHandler(park), ReadHeaderTimeout: 5 * time.Second}
	s, err := httpconn.New(httpconn.Config{HTTP: hs, Accept: accept, MaxBody: 1 << 10, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func all([]byte) bool { return true }

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

type answer struct {
	status int
	body   string
	hdr    string
	closed bool
}

// ask writes raw on a new connection and reads the answer, then whether
// the server closes the connection after it.
func ask(t *testing.T, addr, raw string) answer {
	t.Helper()
	c, br := dial(t, addr)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	var hdr []string
	for _, k := range []string{"Content-Type", "X-Seen", "Allow", "Location"} {
		hdr = append(hdr, k+"="+resp.Header.Get(k))
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
	_, err = http.ReadResponse(br, nil)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no answer and no close within 300ms: %v", err)
	}
	return answer{resp.StatusCode, string(body), strings.Join(hdr, " "), err != nil}
}

// A raw request answered by the fast loop and by net/http alone reads
// the same: status, body, headers, and whether the connection closes.
func TestAnswersAsNetHTTP(t *testing.T) {
	long := strings.Repeat("x", 5000)
	cases := []struct{ name, req string }{
		{"post", "POST /a/b HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nt=t&d=hi&n=1"},
		{"get query", "GET /a/b?t=t&d=hi HTTP/1.1\r\nHost: h:80\r\n\r\n"},
		{"get no query", "GET /a HTTP/1.1\r\nHost: [::1]:8\r\n\r\n"},
		{"chunked", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"expect", "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"},
		{"bare LF", "GET /a HTTP/1.1\nHost: h\n\n"},
		{"big head", "GET /a HTTP/1.1\r\nHost: h\r\nX-Pad: " + long + "\r\n\r\n"},
		{"HTTP/1.0", "GET /a HTTP/1.0\r\nHost: h\r\n\r\n"},
		{"connection close", "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"no host", "GET /a HTTP/1.1\r\n\r\n"},
		{"two hosts", "GET /a HTTP/1.1\r\nHost: h\r\nHost: g\r\n\r\n"},
		{"bad host", "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"obs-fold", "GET /a HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n"},
		{"two lengths", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"},
		{"signed length", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc"},
		{"over MaxBody", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("y", 2000)},
		{"dot segment", "GET /a/../b HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"double slash", "GET /a//b HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"escaped", "GET /%61 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"put", "PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{"control byte", "GET /a HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n"},
	}
	_, fast := serve(t, all, nil)
	_, plain := serve(t, nil, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := ask(t, fast, tc.req), ask(t, plain, tc.req); got != want {
				t.Errorf("fast loop:\n%+v\nnet/http:\n%+v", got, want)
			}
		})
	}
}

// A parked connection is answered later, in one response, and then
// serves the next request, pipelined bytes included; from the fast loop
// and from net/http alike.
func TestParkRespond(t *testing.T) {
	for _, tc := range []struct {
		name   string
		accept func([]byte) bool
	}{{"fast loop", all}, {"net/http", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			_, addr := serve(t, tc.accept, func(p *httpconn.Parked, text string) {
				<-release
				p.Respond(func(w http.ResponseWriter) bool {
					w.Header().Set("Content-Type", "text/plain")
					_, _ = io.WriteString(w, "later: "+text)
					return true
				})
			})
			c, br := dial(t, addr)
			_, _ = io.WriteString(c, "GET /park/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
			close(release)
			for _, want := range []string{"later: GET /park/1", "GET /next"} {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte(want)) || resp.Header.Get("Date") == "" {
					t.Fatalf("%d %q, want %q", resp.StatusCode, body, want)
				}
			}
		})
	}
}

// Gone sees a parked connection's client go away.
func TestParkedGone(t *testing.T) {
	parked := make(chan *httpconn.Parked, 1)
	_, addr := serve(t, all, func(p *httpconn.Parked, _ string) { parked <- p })
	c, _ := dial(t, addr)
	_, _ = io.WriteString(c, "GET /park/1 HTTP/1.1\r\nHost: h\r\n\r\n")
	p := <-parked
	defer p.Close()
	if p.Gone() {
		t.Fatal("gone while connected")
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !p.Gone() {
		if time.Now().After(deadline) {
			t.Fatal("the closed connection was not seen")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Shutdown closes idle kept-alive connections of the fast loop at once.
func TestShutdownClosesIdle(t *testing.T) {
	s, addr := serve(t, all, nil)
	c, br := dial(t, addr)
	_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var ne net.Error
	if _, err := br.ReadByte(); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("idle connection after Shutdown: %v", err)
	}
}

// FuzzParseHead: whatever the fast loop takes, net/http reads the same
// way.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /j/abc?ttl=0&cb=x HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /s/abc HTTP/1.1\r\nHost: h:80\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
		"GET /c/a-b_C HTTP/1.1\r\nhost: [::1]:8\r\nX-Y:  z \r\n\r\n",
		"GET /s/x HTTP/1.1\r\nHost: h\r\nContent-Length: 01\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := httpconn.ParseHead(b, 1<<20)
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("the fast path takes what net/http refuses (%v): %q", err, b)
		}
		if req.Method != h.Method || req.URL.RawQuery != h.Query || req.URL.Path != h.Path ||
			req.Host != h.Host || req.ContentLength != h.ContentLength || req.Close != h.Close ||
			req.Header.Get("Content-Type") != h.ContentType {
			t.Fatalf("fast path %+v; net/http %s %s ?%s host %q length %d close %v type %q",
				h, req.Method, req.URL.Path, req.URL.RawQuery, req.Host, req.ContentLength, req.Close, req.Header.Get("Content-Type"))
		}
	})
}
