package ops

import (
	"bufio"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/polysocket/polysocket/internal/proctest"
)

// startProc starts the binary with args (the subcommand first) as
// proctest.Start does, logging JSON at info level; OPSTEST_LOGS set
// prints every log, not only those of failed tests.
func startProc(t testing.TB, opts proctest.Options, args ...string) *proctest.Proc {
	t.Helper()
	opts.Args = append(append([]string(nil), args...), "--log-format", "json", "--log-level", "info")
	opts.ShowLog = os.Getenv("OPSTEST_LOGS") != ""
	return proctest.Start(t, opts)
}

// scrape reads /metrics from the admin listener into a map from series
// (name{labels} as printed) to value.
func scrape(t testing.TB, p *proctest.Proc) map[string]float64 {
	t.Helper()
	resp, err := p.Client().Get(p.AdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
