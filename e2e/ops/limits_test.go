package ops

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// TestSlowlorisCutOff sends a request's headers a byte at a time, slower
// than --read-header-timeout allows: the server closes the connection
// before the headers are done.
func TestSlowlorisCutOff(t *testing.T) {
	p := startProc(t, proctest.Options{}, "both", "--echo=false", "--read-header-timeout", "1s")
	conn, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var closed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.Copy(io.Discard, conn) // returns when the server closes
		closed.Store(true)
	}()
	// 300 bytes at 10 per second would take 30 s.
	req := "GET /healthz HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Slow: loris\r\n", 18) + "\r\n"
	sentBytes := 0
	for i := 0; i < len(req) && !closed.Load(); i++ {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			break
		}
		sentBytes++
		time.Sleep(100 * time.Millisecond)
	}
	<-done
	if sentBytes >= len(req) {
		t.Fatalf("the server read all %d bytes of slow headers without cutting the client off", sentBytes)
	}
	t.Logf("cut off after %d of %d header bytes", sentBytes, len(req))
}

// TestHeaderCap answers a request line and headers over
// --max-header-bytes with 431.
func TestHeaderCap(t *testing.T) {
	p := startProc(t, proctest.Options{}, "both", "--echo=false", "--max-header-bytes", "4096")
	resp, err := p.Client().Get(p.URL() + "/create?target=" + strings.Repeat("a", 16<<10))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// createFrom calls /create with a bad token (so nothing is opened) as if
// through a proxy that says the client is xff; it returns the status and
// error word.
func createFrom(t *testing.T, p *proctest.Proc, xff, cb string) (int, string, http.Header) {
	t.Helper()
	u := p.URL() + "/create?from=t&target=ws://127.0.0.1:1/&token=nope"
	if cb != "" {
		u += "&cb=" + cb
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := p.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	code := ""
	if i := strings.Index(string(b), `"code":"`); i >= 0 {
		code = string(b[i+8:])
		code = code[:strings.IndexByte(code, '"')]
	}
	return resp.StatusCode, code, resp.Header
}

// TestCreateRateLimit checks the per-client-address limit on /create,
// with X-Forwarded-For believed only from a trusted proxy.
func TestCreateRateLimit(t *testing.T) {
	// 127.0.0.1 (the test) is a trusted proxy: the client is the
	// rightmost untrusted X-Forwarded-For entry.
	p := startProc(t, proctest.Options{}, "both", "--echo=false",
		"--create-rate", "0.01", "--create-burst", "3", "--trusted-proxy", "127.0.0.1/32")
	for i := 0; i < 3; i++ {
		if st, code, _ := createFrom(t, p, "203.0.113.7", ""); code != "token" {
			t.Fatalf("create %d: status %d code %q, want token", i, st, code)
		}
	}
	st, code, h := createFrom(t, p, "203.0.113.7", "")
	if st != http.StatusTooManyRequests || code != "limit" || h.Get("Retry-After") == "" {
		t.Fatalf("4th create: status %d code %q Retry-After %q; want 429 limit with Retry-After", st, code, h.Get("Retry-After"))
	}
	// JSONP: 200 so the callback runs, with the error word.
	if st, code, _ := createFrom(t, p, "203.0.113.7", "f"); st != http.StatusOK || code != "limit" {
		t.Fatalf("JSONP: status %d code %q", st, code)
	}
	// A client cannot escape by writing its own X-Forwarded-For entries:
	// only the one the trusted proxy added counts.
	if _, code, _ := createFrom(t, p, "198.51.100.1, 203.0.113.7", ""); code != "limit" {
		t.Fatalf("spoofed left entry: code %q, want limit", code)
	}
	// Another client has its own bucket.
	if _, code, _ := createFrom(t, p, "203.0.113.8", ""); code != "token" {
		t.Fatalf("other client: code %q, want token", code)
	}
	if m := scrape(t, p); m[`polysocket_limit_refusals_total{limit="rate"}`] != 3 {
		t.Errorf("rate refusals %v, want 3", m[`polysocket_limit_refusals_total{limit="rate"}`])
	}

	// IPv6 clients count by /64: another address of the same /64 is the
	// same client.
	for i := 1; i <= 3; i++ {
		if _, code, _ := createFrom(t, p, "2001:db8:1:1::"+strconv.Itoa(i), ""); code != "token" {
			t.Fatalf("IPv6 create %d: code %q, want token", i, code)
		}
	}
	if _, code, _ := createFrom(t, p, "2001:db8:1:1:ffff::9", ""); code != "limit" {
		t.Fatalf("4th create from the same /64: code %q, want limit", code)
	}
	if _, code, _ := createFrom(t, p, "2001:db8:1:2::1", ""); code != "token" {
		t.Fatalf("another /64: code %q, want token", code)
	}
}

// TestCreateLimitSparesLoopback checks that the machine itself is never
// held to the create limit (a test suite against `polysocket both`),
// and that X-Forwarded-For from a proxy not named by --trusted-proxy is
// ignored, with one warning that names the flag.
func TestCreateLimitSparesLoopback(t *testing.T) {
	q := startProc(t, proctest.Options{}, "both", "--echo=false", "--create-rate", "0.01", "--create-burst", "2")
	for i := 0; i < 10; i++ {
		if _, code, _ := createFrom(t, q, "", ""); code != "token" {
			t.Fatalf("create %d from loopback: code %q, want token (not limited)", i, code)
		}
	}
	// Ignored: the client is 127.0.0.1, whatever the header says.
	for i := 0; i < 5; i++ {
		if _, code, _ := createFrom(t, q, "203.0.113.3", ""); code != "token" {
			t.Fatalf("untrusted X-Forwarded-For was believed: create %d: code %q", i, code)
		}
	}
	var log string
	testenv.WaitFor(t, 5*time.Second, "the untrusted-proxy warning in the log", func() bool {
		log = q.LogTail(200)
		return strings.Contains(log, "--trusted-proxy")
	})
	if n := strings.Count(log, "not a trusted proxy"); n != 1 {
		t.Fatalf("the warning was logged %d times, want once:\n%s", n, log)
	}
}

// TestNoCompressionFromTargets checks that the relay never offers
// permessage-deflate to a target, so a target cannot make it inflate
// compressed frames (a memory amplification).
func TestNoCompressionFromTargets(t *testing.T) {
	target := testenv.NewTarget(t, testenv.TargetOptions{})
	p := startProc(t, proctest.Options{}, "both", "--echo=false", "--create-rate", "0")
	cl := &testenv.Client{Base: p.URL(), HTTP: p.Client()}
	s := cl.Open(t, target.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent(t)(s.SendText(ctx, strings.Repeat("compressible ", 100)))
	if got := s.Collect(t, 1, 10*time.Second); len(got) != 1 {
		t.Fatalf("echo: %+v", got)
	}
	hs := target.Headers()
	if len(hs) != 1 {
		t.Fatalf("%d handshakes", len(hs))
	}
	if ext := hs[0].Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("the relay offered extensions %q; want none (no permessage-deflate)", ext)
	}
	if _, err := s.Close(ctx, 1000, ""); err != nil {
		t.Fatal(err)
	}
}
