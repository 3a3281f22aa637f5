package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable time source for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimiterPerAddress(t *testing.T) {
	ck := &clock{t: time.Unix(1e9, 0)}
	l := New(Config{Rate: 1, Burst: 2, Now: ck.now})
	for i := 0; i < 2; i++ {
		if !l.Allow("a") {
			t.Fatalf("burst: request %d refused", i)
		}
	}
	if l.Allow("a") {
		t.Fatal("over the burst allowed")
	}
	if !l.Allow("b") {
		t.Fatal("another address shares the bucket")
	}
	ck.add(time.Second)
	first, second := l.Allow("a"), l.Allow("a")
	if !first || second {
		t.Fatal("refill: want exactly one token after 1s at rate 1")
	}
}

func TestLimiterForgetsIdleAndBoundsMemory(t *testing.T) {
	ck := &clock{t: time.Unix(1e9, 0)}
	l := New(Config{Rate: 1, Burst: 1, MaxClients: 100, Now: ck.now})
	for i := 0; i < 50; i++ {
		l.Allow("x" + strconv.Itoa(i))
	}
	ck.add(time.Minute)
	l.Allow("y")
	if n := l.Len(); n != 1 {
		t.Fatalf("%d addresses remembered after they went idle, want 1", n)
	}
	for i := 0; i < 1000; i++ {
		ck.add(time.Millisecond)
		l.Allow("z" + strconv.Itoa(i))
		if l.Len() > 100 {
			t.Fatalf("%d addresses remembered, over MaxClients 100", l.Len())
		}
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		trusted      bool
		want         string
	}{
		{"no proxies configured", "203.0.113.9:1234", []string{"1.2.3.4"}, false, "203.0.113.9"},
		{"untrusted peer", "203.0.113.9:1234", []string{"1.2.3.4"}, true, "203.0.113.9"},
		{"trusted peer", "10.1.1.1:1234", []string{"198.51.100.7"}, true, "198.51.100.7"},
		{"spoofed left entry", "10.1.1.1:1234", []string{"6.6.6.6, 198.51.100.7"}, true, "198.51.100.7"},
		{"chain of proxies", "127.0.0.1:1", []string{"198.51.100.7, 10.2.2.2", "10.3.3.3"}, true, "198.51.100.7"},
		{"all trusted", "10.1.1.1:1", []string{"10.9.9.9"}, true, "10.9.9.9"},
		{"garbage hop", "10.1.1.1:1", []string{"198.51.100.7, nonsense"}, true, "10.1.1.1"},
		{"no header", "10.1.1.1:1", nil, true, "10.1.1.1"},
		{"mapped peer", "[::ffff:10.1.1.1]:1", []string{"198.51.100.7"}, true, "198.51.100.7"},
		{"ipv6 client", "10.1.1.1:1", []string{"2001:db8::1"}, true, "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr []netip.Prefix
			if tc.trusted {
				tr = trusted
			}
			r := httptest.NewRequest(http.MethodGet, "/create", nil)
			r.RemoteAddr = tc.remote
			for _, h := range tc.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := ClientAddr(tr)(r); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	ps, err := ParsePrefixes([]string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"})
	if err != nil || len(ps) != 3 || ps[1].Bits() != 32 {
		t.Fatalf("%v %v", ps, err)
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("bad prefix accepted")
	}
}

func TestMiddleware(t *testing.T) {
	l := New(Config{Rate: 0.001, Burst: 1})
	refused := 0
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }),
		func(r *http.Request) string { return "k" }, func() { refused++ })
	do := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec
	}
	if rec := do("/create"); rec.Code != 299 {
		t.Fatalf("first: %d", rec.Code)
	}
	rec := do("/create")
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), `"code":"limit"`) || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("plain: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	rec = do("/create?cb=f")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "/**/f(") {
		t.Fatalf("JSONP: %d %q", rec.Code, rec.Body)
	}
	if rec := do("/create?cb=1x"); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad callback: %d", rec.Code)
	}
	if refused != 3 {
		t.Fatalf("refused %d, want 3", refused)
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		addr, key string
		limited   bool
	}{
		{"203.0.113.9", "203.0.113.9", true},
		{"::ffff:203.0.113.9", "203.0.113.9", true},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64", true},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64", true},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64", true},
		{"fe80::1%eth0", "fe80::/64", true},
		{"127.0.0.1", "", false},
		{"127.9.9.9", "", false},
		{"::1", "", false},
		{"::ffff:127.0.0.1", "", false},
		{"not-an-ip", "not-an-ip", true},
	} {
		key, limited := Key(tc.addr)
		if key != tc.key || limited != tc.limited {
			t.Errorf("Key(%q) = %q, %v; want %q, %v", tc.addr, key, limited, tc.key, tc.limited)
		}
	}
}

// TestLimiterIPv6By64 checks that a client cannot escape its bucket by
// taking another address of its /64, and that another /64 is another
// client.
func TestLimiterIPv6By64(t *testing.T) {
	l := New(Config{Rate: 0.001, Burst: 2})
	for i := 1; i <= 2; i++ {
		if !l.Allow("2001:db8:0:1::" + strconv.Itoa(i)) {
			t.Fatalf("burst: request %d refused", i)
		}
	}
	for _, a := range []string{"2001:db8:0:1::3", "2001:db8:0:1:ffff:ffff:ffff:ffff"} {
		if l.Allow(a) {
			t.Fatalf("%s: another address of the same /64 got a fresh bucket", a)
		}
	}
	if !l.Allow("2001:db8:0:2::1") {
		t.Fatal("another /64 shares the bucket")
	}
	if n := l.Len(); n != 2 {
		t.Fatalf("%d buckets, want 2 (one per /64)", n)
	}
}

// TestLimiterLoopbackUnlimited checks that the machine itself (a test
// suite against `polysocket both`) is never limited, and costs no
// bucket.
func TestLimiterLoopbackUnlimited(t *testing.T) {
	l := New(Config{Rate: 0.001, Burst: 1})
	for i := 0; i < 100; i++ {
		for _, a := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"} {
			if !l.Allow(a) {
				t.Fatalf("request %d from %s refused", i, a)
			}
		}
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("%d buckets for loopback, want 0", n)
	}
	if !l.Allow("192.0.2.1") || l.Allow("192.0.2.1") {
		t.Fatal("other addresses are no longer limited")
	}
}

func TestWarnUntrusted(t *testing.T) {
	var mu sync.Mutex
	var warned []string
	check := WarnUntrusted([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, func(peer string) {
		mu.Lock()
		warned = append(warned, peer)
		mu.Unlock()
	})
	req := func(remote, xff string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/create", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		return r
	}
	check(req("203.0.113.1:1", ""))                // no header
	check(req("10.1.1.1:1", "198.51.100.7"))       // a trusted proxy
	check(req("[::ffff:10.1.1.1]:1", "192.0.2.1")) // the same, mapped
	if len(warned) != 0 {
		t.Fatalf("warned %v without cause", warned)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			check(req("127.0.0.1:5", "198.51.100.7"))
		}()
	}
	wg.Wait()
	check(req("192.0.2.9:5", "198.51.100.7"))
	if len(warned) != 1 || warned[0] != "127.0.0.1" {
		t.Fatalf("warned %v, want once for 127.0.0.1", warned)
	}
}
