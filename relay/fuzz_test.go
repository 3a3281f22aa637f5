package relay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/jsonp"
	"github.com/polysocket/polysocket/membus"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/session"
	"go.uber.org/zap"
)

// FuzzParseSend checks the send parameters' parser: a send it accepts
// has a valid type, data that decodes back from d (UTF-8 text, or
// standard base64), a size within the limit, and n and f in range.
func FuzzParseSend(f *testing.F) {
	f.Add("t", "hello", "1", "")
	f.Add("b", "AAEC/w==", "2", "1")
	f.Add("b", "AAEC\n/w==", "", "0")
	f.Add("b", "AA=", "3", "")
	f.Add("t", "\xff", "1", "")
	f.Add("x", "", "-1", "2")
	f.Add("t", "", "9007199254740993", "")
	f.Add("b", strings.Repeat("QUFB", 40), "+1", "")
	const maxMessage = 64
	rl, err := relay.New(relay.Config{FQDN: "relay.test", Session: session.Config{MaxMessage: maxMessage}}, membus.New(0), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ, d, n, frag string) {
		p := jsonp.Params{"t": typ, "d": d}
		if n != "" {
			p["n"] = n
		}
		if frag != "" {
			p["f"] = frag
		}
		sr, code, msg := rl.ParseSend(p)
		if code != "" {
			if msg == "" {
				t.Fatalf("refusal %q without a message", code)
			}
			if code != control.CodeParams && code != control.CodeTooLarge {
				t.Fatalf("unexpected error word %q", code)
			}
			return
		}
		if len(sr.Data) > maxMessage {
			t.Fatalf("accepted %d bytes over the %d limit", len(sr.Data), maxMessage)
		}
		if sr.N < 0 || sr.N > 1<<53 || (n == "" && sr.N != 0) {
			t.Fatalf("n %q gave %d", n, sr.N)
		}
		if sr.More != (frag == "1") {
			t.Fatalf("f %q gave More %v", frag, sr.More)
		}
		switch typ {
		case "t":
			if sr.Binary || string(sr.Data) != d || !utf8.Valid(sr.Data) {
				t.Fatalf("text %q gave %q (binary %v)", d, sr.Data, sr.Binary)
			}
		case "b":
			want, err := base64.StdEncoding.DecodeString(d)
			if !sr.Binary || err != nil || !bytes.Equal(sr.Data, want) {
				t.Fatalf("binary %q gave %x (binary %v, %v)", d, sr.Data, sr.Binary, err)
			}
		default:
			t.Fatalf("type %q accepted", typ)
		}
	})
}

// FuzzSendHandler sends arbitrary /s requests, query and body, to a real
// session whose target discards what it gets: every answer is one of the
// protocol's statuses with a JSON (or JSONP) body carrying nosniff, and
// nothing panics.
func FuzzSendHandler(f *testing.F) {
	f.Add("t=t&d=hi&n=1", "", false)
	f.Add("cb=f", "t=b&d=AAEC&n=2&f=1", true)
	f.Add("", "t=t&d=%E2%80%A8&n=3", true)
	f.Add("t=t&d=x&n=1000", "", false)
	f.Add("t=t&t=t&d=", "", false)
	f.Add("cb=1bad&t=t&d=", "", false)
	f.Add("t=b&d=!!!", "", false)
	st := testenv.NewStack(f, testenv.StackOptions{Session: session.Config{MaxMessage: 1024}})
	tg := testenv.NewTarget(f, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}})
	tr := &http.Transport{}
	f.Cleanup(tr.CloseIdleConnections)
	cl := &testenv.Client{Base: st.URL, HTTP: &http.Client{Transport: tr}}
	s := cl.Open(f, tg.URL, nil)
	socket, host := s.Socket, s.Host
	h := st.Relay.Handler()
	f.Fuzz(func(t *testing.T, query, body string, post bool) {
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/s/" + socket, RawQuery: query}, Header: http.Header{}}
		if post {
			req.Method = http.MethodPost
			req.Body = io.NopCloser(strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Host = host
		req = req.WithContext(context.Background())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated, http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge,
			http.StatusServiceUnavailable: // an early send with no room to be held
		default:
			t.Fatalf("status %d for %q / %q: %s", rec.Code, query, body, rec.Body)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("no nosniff header")
		}
		b := rec.Body.Bytes()
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("answer is not JSON: %q", b)
			}
		}
	})
}

// FuzzSessionHost checks the Host check of session requests against its
// definition: {uniq}.{fqdn} in any case, with the fqdn's port or none
// (80 or 443 or none when the fqdn has no port), and nothing else.
func FuzzSessionHost(f *testing.F) {
	for _, h := range []string{"abc123.relay.test:8080", "ABC123.Relay.Test", "abc123.relay.test:80", "relay.test:8080",
		"evil.example", "abc123.relay.test:8080.evil", "xabc123.relay.test", "abc123.relay.test:", "[::1]:8080", ""} {
		f.Add(h)
	}
	withPort, err := relay.New(relay.Config{FQDN: "relay.test:8080"}, membus.New(0), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	noPort, err := relay.New(relay.Config{FQDN: "relay.test"}, membus.New(0), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	const uniq = "abc123"
	f.Fuzz(func(t *testing.T, host string) {
		h := strings.ToLower(host)
		want := h == "abc123.relay.test:8080" || h == "abc123.relay.test"
		if got := withPort.IsSessionHost(uniq, host); got != want {
			t.Fatalf("fqdn relay.test:8080: host %q taken %v, want %v", host, got, want)
		}
		want = h == "abc123.relay.test" || h == "abc123.relay.test:80" || h == "abc123.relay.test:443"
		if got := noPort.IsSessionHost(uniq, host); got != want {
			t.Fatalf("fqdn relay.test: host %q taken %v, want %v", host, got, want)
		}
	})
}
