package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
	"go.uber.org/zap/zaptest"
)

// TestRoutersRoundRobin puts two counting proxies in front of one stack,
// as two routers of a cluster, and checks that creates alternate
// between them and the run stays clean.
func TestRoutersRoundRobin(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{})
	target, err := url.Parse(st.URL)
	if err != nil {
		t.Fatal(err)
	}
	var creates [2]atomic.Int64
	var routers []string
	for i := range creates {
		rp := httputil.NewSingleHostReverseProxy(target)
		tr := &http.Transport{}
		rp.Transport = tr
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/create" {
				creates[i].Add(1)
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(func() {
			srv.Close()
			tr.CloseIdleConnections()
		})
		routers = append(routers, srv.URL)
	}
	cfg := Config{Routers: routers, Mode: ModeEcho, Concurrency: 6, Duration: 500 * time.Millisecond, Timeout: 10 * time.Second}
	b, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := b.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, rep.Relay, cfg)
	for i := range creates {
		if n := creates[i].Load(); n != 3 {
			t.Errorf("router %d got %d creates, want 3", i, n)
		}
	}
}

func TestRoutersValidate(t *testing.T) {
	if _, err := New(Config{Routers: []string{"http://127.0.0.1:1", "ftp://x"}}, nil); err == nil {
		t.Error("a non-http router: no error")
	}
}
