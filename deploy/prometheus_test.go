package deploy_test

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/redistest"
	"github.com/polysocket/polysocket/internal/testenv"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Bounds of the Prometheus test.
const (
	evalDeadline = 90 * time.Second // for every query to have data
	trafficLimit = 30 * time.Second // the traffic's requests together
)

// The test relay's small bounds, so that the traffic reaches them.
const (
	testCapacity   = 4
	testMaxMessage = 40000
	testBufTotal   = 65536
)

// TestPrometheusEvaluatesDashboardAndAlerts runs `polysocket both` on
// Redis and a real Prometheus scraping its admin listener (and a dead
// target standing for a relay that stopped being scraped), drives
// traffic that fills the relay, buffers near the bound, refuses creates
// and finally loses Redis, and then evaluates every dashboard query and
// every alert expression through Prometheus's HTTP API: each must parse
// and return data, and every metric named must be one the binary
// exports. Prometheus also loads alerts.yaml itself, and each rule must
// be healthy and pending or firing.
func TestPrometheusEvaluatesDashboardAndAlerts(t *testing.T) {
	_, panels := loadDashboard(t)
	alerts := loadAlerts(t)
	rdb := redistest.Start(t)
	runTool(t, proctest.Build(t), "token", "add", "deploy", "--target", "ws://127.0.0.1:*", "--origin", "*", "--redis", rdb.URL())
	echo := testenv.NewTarget(t, testenv.TargetOptions{})

	addr := proctest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	ps := proctest.Start(t, proctest.Options{Name: "both", Addr: addr, Args: []string{
		"both", "--redis", rdb.URL(), "--echo=false", "--fqdn", "localhost:" + port,
		"--allow-cidr", "127.0.0.0/8", "--create-rate", "0", "--idle-timeout", "5m",
		"--capacity", strconv.Itoa(testCapacity), "--max-message", strconv.Itoa(testMaxMessage),
		"--max-buffered-total", strconv.Itoa(testBufTotal),
		"--drain-timeout", "1s", "--close-grace", "100ms", "--log-format", "json",
	}})
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, []scrapeJob{
		{"polysocket", []string{strings.TrimPrefix(ps.AdminURL(), "http://")}},
		// Nothing listens here: a relay that stopped being scraped.
		{"polysocket-gone", []string{proctest.FreeAddr(t)}},
	}, []string{rules})
	// Counters must move after the first scrape for rate() to see them.
	awaitData(t, prom, []check{{"first scrape", `up{job="polysocket"} == 1`, false}})

	hc := hostClient(t, ps.Addr())
	// The relay registers in Redis within a second of its start.
	testenv.WaitEvery(t, trafficLimit, 100*time.Millisecond, "the relay registered in Redis", func() bool {
		n, err := redistest.Do(rdb.Addr(), "SCARD", "polysocket:relays")
		return err == nil && n == "1"
	})
	driveTraffic(t, prom, hc, "http://localhost:"+port, echo.URL)
	// The refused create's series is scraped before Redis goes, so the
	// refusals without Redis move it (rate() ignores a series' birth).
	awaitData(t, prom, []check{{"refused create scraped", `polysocket_creates_total{code="unavailable"} > 0`, false}})
	rdb.Stop()
	start := time.Now()
	refuseWithoutRedis(t, hc, "http://localhost:"+port, echo.URL)
	t.Logf("refuseWithoutRedis: %v", time.Since(start).Round(time.Millisecond))

	var checks []check
	for _, q := range panels {
		expr, err := expandVars(q.expr)
		if err != nil {
			t.Fatalf("%s: %v", q.what, err)
		}
		checks = append(checks, check{q.what, expr, true})
	}
	for _, r := range alerts {
		checks = append(checks, check{"alert " + r.Alert, r.Expr, false})
	}
	checkNamesExported(t, ps, checks)
	if t.Failed() {
		t.FailNow() // no need to wait for data that cannot come
	}
	awaitData(t, prom, checks)
	awaitRulesActive(t, prom, alerts)
}

// check is a query that must return data: at least one series, and
// with number, at least one that is a number (not NaN).
type check struct {
	what, expr string
	number     bool
}

// awaitData evaluates the checks every second until each has returned
// data once. A query Prometheus refuses fails the test at once.
func awaitData(t *testing.T, prom *promServer, checks []check) {
	t.Helper()
	pending := slices.Clone(checks)
	last := make(map[string]string)
	deadline := time.Now().Add(evalDeadline)
	start := time.Now()
	defer func() { t.Logf("awaitData: %d checks in %v", len(checks), time.Since(start).Round(time.Millisecond)) }()
	for len(pending) > 0 && time.Now().Before(deadline) {
		var still []check
		for _, c := range pending {
			res, err := prom.query(c.expr)
			if err != nil {
				t.Fatalf("%s: Prometheus refused %q: %v", c.what, c.expr, err)
			}
			if !hasData(res, c.number) {
				last[c.what] = strconv.Itoa(len(res)) + " series"
				still = append(still, c)
			}
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(time.Second)
		}
	}
	for _, c := range pending {
		t.Errorf("%s: no data from %q (last answer: %s)", c.what, c.expr, last[c.what])
	}
}

func hasData(res []promSample, number bool) bool {
	for _, s := range res {
		v, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(v, 64)
		if !number || err == nil && !math.IsNaN(f) {
			return true
		}
	}
	return false
}

// awaitRulesActive waits until Prometheus reports every alert rule
// healthy and pending or firing (their for: durations are longer than
// the test).
func awaitRulesActive(t *testing.T, prom *promServer, alerts []alertRule) {
	t.Helper()
	var got []promRule
	start := time.Now()
	defer func() { t.Logf("awaitRulesActive: %v", time.Since(start).Round(time.Millisecond)) }()
	testenv.WaitEvery(t, evalDeadline, time.Second, "every alert rule pending or firing in Prometheus", func() bool {
		var err error
		if got, err = prom.rules(); err != nil {
			t.Fatal(err)
		}
		active := 0
		for _, r := range got {
			if r.Health == "err" {
				t.Fatalf("rule %s: %s", r.Name, r.LastError)
			}
			if r.State == "pending" || r.State == "firing" {
				active++
			}
		}
		return len(got) == len(alerts) && active == len(alerts)
	})
}

// checkNamesExported checks every metric a query names against the
// binary's /metrics: a dashboard or alert naming a metric polysocket
// does not export fails here (besides returning no data).
func checkNamesExported(t *testing.T, ps *proctest.Proc, checks []check) {
	t.Helper()
	exported := exportedNames(t, ps)
	exported["up"] = true // Prometheus's own, per target
	for _, c := range checks {
		for _, name := range metricName.FindAllString(c.expr, -1) {
			if !exported[name] {
				t.Errorf("%s: metric %s is not exported by polysocket (see its /metrics)", c.what, name)
			}
		}
	}
}

// exportedNames are the metric names of a process's /metrics, read by
// Prometheus's own text parser; a histogram's _bucket, _sum and _count
// series included.
func exportedNames(t *testing.T, ps *proctest.Proc) map[string]bool {
	t.Helper()
	resp, err := ps.Client().Get(ps.AdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	names := make(map[string]bool)
	for name, f := range families {
		names[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[name+suffix] = true
			}
		}
	}
	return names
}

// hostClient is an HTTP client that reaches addr whatever the host name
// (the relay's session hosts are {uniq}.localhost:PORT).
func hostClient(t *testing.T, addr string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: trafficLimit}
}

// open creates a session with the given fallback reason ("" sends
// none) and returns it talking to its own session host.
func open(t *testing.T, hc *http.Client, router, target, why string) *testenv.Session {
	t.Helper()
	r := create(t, hc, router, target, why)
	if !r.OK {
		t.Fatalf("create: %+v", r)
	}
	return &testenv.Session{C: &testenv.Client{Base: router, Relay: "http://" + r.FQDN, HTTP: hc}, Socket: r.Socket, Proto: r.Protocol}
}

// create asks the router for a session.
func create(t *testing.T, hc *http.Client, router, target, why string) testenv.CreateReply {
	t.Helper()
	var extra url.Values
	if why != "" {
		extra = url.Values{"why": {why}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), trafficLimit)
	defer cancel()
	cl := &testenv.Client{Base: router, HTTP: hc, Token: "deploy"}
	r, _, err := cl.Create(ctx, target, extra)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return r
}

// driveTraffic opens a session, waits for Prometheus to scrape it, then
// fills the relay to its capacity with sessions that send, poll, buffer
// and end, and has a create refused for capacity.
func driveTraffic(t *testing.T, prom *promServer, hc *http.Client, router, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), trafficLimit)
	defer cancel()
	want := func(what string, want int) func(int, error) {
		return func(st int, err error) {
			if err != nil || st != want {
				t.Fatalf("%s: status %d, %v; want %d", what, st, err, want)
			}
		}
	}
	echoed := open(t, hc, router, target, "failed")
	for i := range 3 {
		want("send", http.StatusCreated)(echoed.SendText(ctx, "hello "+strconv.Itoa(i)))
		echoed.Collect(t, 1, trafficLimit)
	}
	// Series born with the first session (establish and create latency
	// buckets, why="failed") are scraped before the rest moves them, or
	// rate() over them stays 0 and their quantiles NaN.
	awaitData(t, prom, []check{{"first session scraped", `polysocket_establish_seconds_count{result="ok"} > 0`, false}})
	// Two echoes left unpolled: 2 x (30,000 + 72) bytes buffered, 92 %
	// of the 65,536 bound.
	buffered := open(t, hc, router, target, "none")
	for range 2 {
		want("send 30000 bytes", http.StatusCreated)(buffered.SendBinary(ctx, make([]byte, 30000)))
	}
	oversize := open(t, hc, router, target, "forced")
	want("send over --max-message", http.StatusRequestEntityTooLarge)(oversize.SendBinary(ctx, make([]byte, testMaxMessage+1)))
	if _, st, err := oversize.Poll(ctx, 100*time.Millisecond); err != nil || st != http.StatusOK {
		t.Fatalf("empty poll: %d %v", st, err)
	}
	ended := open(t, hc, router, target, "")
	want("close", http.StatusOK)(ended.Close(ctx, 1000, "done"))
	ended.Collect(t, 1, trafficLimit) // the close message
	// The ended session's room shows in the relay's next registration.
	testenv.WaitEvery(t, trafficLimit, 200*time.Millisecond, "a fourth session once the third ended", func() bool {
		return create(t, hc, router, target, "failed").OK
	})
	if r := create(t, hc, router, target, "failed"); r.OK || r.Code != "unavailable" {
		t.Fatalf("create on a full relay: %+v, want code unavailable", r)
	}
}

// refuseWithoutRedis creates while Redis is gone, until the router
// answers unavailable, so the error ratio and the bus errors move.
func refuseWithoutRedis(t *testing.T, hc *http.Client, router, target string) {
	t.Helper()
	n := 0
	testenv.WaitEvery(t, trafficLimit, 200*time.Millisecond, "creates refused with Redis gone", func() bool {
		if r := create(t, hc, router, target, "failed"); !r.OK && r.Code == "unavailable" {
			n++
		}
		return n >= 3
	})
}
