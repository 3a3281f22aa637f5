package ops

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/polysocket/polysocket/internal/proctest"
)

// get answers a GET of u with host (if not "") as Host: the status and
// up to 64 KiB of the body.
func get(t *testing.T, c *http.Client, u, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

// TestMetricsOnAdminListenerOnly checks that metrics and profiles are
// served on --admin-listen and nowhere on the public listener (neither
// the router's host nor a relay session host), while the health checks
// stay public for load balancers.
func TestMetricsOnAdminListenerOnly(t *testing.T) {
	p := startProc(t, proctest.Options{}, "both", "--create-rate", "0")
	c := p.Client()
	port := p.Addr()[strings.LastIndexByte(p.Addr(), ':')+1:]
	for _, host := range []string{"", "localhost:" + port, "abc123.localhost:" + port} {
		for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap"} {
			if st, _ := get(t, c, p.URL()+path, host); st != http.StatusNotFound {
				t.Errorf("public %s (Host %q): status %d, want 404", path, host, st)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if st, _ := get(t, c, p.URL()+path, ""); st != http.StatusOK {
			t.Errorf("public %s: status %d, want 200", path, st)
		}
	}
	st, body := get(t, c, p.AdminURL()+"/metrics", "")
	if st != http.StatusOK || !strings.Contains(body, "polysocket_sessions_live") {
		t.Fatalf("admin /metrics: status %d, body %.200q", st, body)
	}
	if st, body := get(t, c, p.AdminURL()+"/debug/pprof/", ""); st != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("admin /debug/pprof/: status %d, body %.200q", st, body)
	}
	// The command line may hold a Redis password.
	if st, _ := get(t, c, p.AdminURL()+"/debug/pprof/cmdline", ""); st != http.StatusNotFound {
		t.Errorf("admin /debug/pprof/cmdline: status %d, want 404", st)
	}

	// Off: no admin listener, and still no public metrics.
	q := startProc(t, proctest.Options{Admin: "off"}, "both", "--create-rate", "0")
	if q.AdminURL() != "" {
		t.Fatal("AdminURL with the admin listener off")
	}
	if st, _ := get(t, q.Client(), q.URL()+"/metrics", ""); st != http.StatusNotFound {
		t.Errorf("public /metrics with --admin-listen off: status %d, want 404", st)
	}
	if strings.Contains(q.LogTail(50), "admin listening") {
		t.Error("the log says an admin listener runs with --admin-listen off")
	}
}
