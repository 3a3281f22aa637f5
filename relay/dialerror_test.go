package relay_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/netguard"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/session"
	"github.com/polysocket/polysocket/token"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// nxdomainServer is a DNS server on loopback UDP that answers every
// query "no such name"; it stops at cleanup.
func nxdomainServer(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			if ans := nxdomain(buf[:n]); ans != nil {
				_, _ = pc.WriteTo(ans, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return pc.LocalAddr().String()
}

// nxdomain turns a DNS query into its NXDOMAIN answer: the header with
// QR, RA and rcode 3, and the question; nil for a malformed query.
func nxdomain(q []byte) []byte {
	end := 12
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	end += 5 // the root label, QTYPE and QCLASS
	if len(q) < 12 || end > len(q) {
		return nil
	}
	a := append([]byte(nil), q[:end]...)
	a[2] = 0x80 | q[2]&0x79 // QR, the opcode and RD of the query
	a[3] = 0x83             // RA, NXDOMAIN
	clear(a[6:12])          // no answer, authority or additional records
	return a
}

// A failed dial is answered with its error word and a fixed sentence: no
// address of the relay's network (its resolver's, the target's), no
// "lookup" or "dial tcp" from Go's error chain, whichever way the dial
// failed. The details are in the relay's log, at info.
func TestDialErrorsSayNoMore(t *testing.T) {
	t.Parallel()
	dns := nxdomainServer(t)
	// A listening port the guard refuses, as it refuses the relay's own.
	self := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(self.Close)
	selfAP := netip.MustParseAddrPort(self.Listener.Addr().String())
	guard := netguard.New(netguard.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Self: []netip.AddrPort{selfAP}})
	d := guard.Dialer(time.Second)
	d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", dns)
	}}
	core, logs := observer.New(zapcore.InfoLevel)
	st := testenv.NewStack(t, testenv.StackOptions{
		Log:     zap.New(core),
		Tokens:  []token.Token{{Name: "dev", Targets: []string{"ws://*:*"}, Origins: []string{"*"}}},
		Session: session.Config{DialTimeout: time.Second, DialContext: d.DialContext},
	})

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	notWS := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notWS.Close)
	redirect := httptest.NewServer(http.RedirectHandler("http://10.1.2.3/admin", http.StatusFound))
	t.Cleanup(redirect.Close)
	// A server that takes the connection and never answers.
	hang := testenv.RawTarget(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })

	ws := func(s *httptest.Server) string { return "ws" + strings.TrimPrefix(s.URL, "http") + "/" }
	leak := regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|\[?[0-9a-fA-F]*:[0-9a-fA-F:]+\]?|(?i)lookup|dial tcp|127\.|localhost`)
	for _, tc := range []struct {
		name, target, code, sentence string
		detail                       string // a regexp the logged error matches
	}{
		{"unresolvable", "ws://nonexistent.invalid:1/", "dial", "could not connect to the target", "lookup nonexistent.invalid"},
		{"closed port", "ws://" + closedAddr + "/", "dial", "could not connect to the target", "connection refused"},
		{"not a WebSocket server", ws(notWS), "dial", "the target did not accept the WebSocket handshake", "404"},
		{"redirect", ws(redirect), "dial", "the target answered with a redirect, which is not followed", "10.1.2.3"},
		{"hanging", "ws://" + hang + "/", "timeout", "the target did not answer in time", "timeout|deadline"},
		{"refused by the guard", ws(self), "target", "the relay may not connect to the target's address", "netguard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, _, err := (&testenv.Client{Base: st.URL}).Create(ctx, tc.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.Code != tc.code || r.Error != tc.sentence {
				t.Fatalf("answer %+v, want code %q and %q", r, tc.code, tc.sentence)
			}
			if !slices.Contains(relay.DialSentences, r.Error) {
				t.Fatalf("answer %q is not one of the fixed sentences", r.Error)
			}
			if m := leak.FindString(r.Error); m != "" {
				t.Fatalf("answer %q tells the client %q", r.Error, m)
			}
			found := logs.FilterMessage("target dial failed").Filter(func(e observer.LoggedEntry) bool {
				m := e.ContextMap()
				return m["target"] == tc.target && regexp.MustCompile(tc.detail).MatchString(m["error"].(string)) && m["establish"] != ""
			})
			if found.Len() != 1 || found.All()[0].Level != zapcore.InfoLevel {
				t.Fatalf("no info log line with %q for %s; the relay logged %+v", tc.detail, tc.target, logs.All())
			}
		})
	}
}
