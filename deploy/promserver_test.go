package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// Bounds of the Prometheus helpers.
const (
	promReadyTimeout = 30 * time.Second
	promStopGrace    = 10 * time.Second
	promCallTimeout  = 10 * time.Second
	toolTimeout      = time.Minute
)

// promServer is a real prometheus process owned by a test.
type promServer struct {
	base   string // http://127.0.0.1:PORT
	client *http.Client
}

// scrapeJob is one static scrape job of the generated configuration.
type scrapeJob struct {
	name    string
	targets []string // host:port
}

// startPrometheus runs Debian's prometheus on a free loopback port with
// a generated configuration (1 s scrape and evaluation intervals, the
// jobs given, the rule files given) and a storage directory in
// t.TempDir(), waits until it is ready, and stops it by PID (SIGTERM,
// then SIGKILL) at cleanup, printing its log if the test failed.
func startPrometheus(t *testing.T, jobs []scrapeJob, ruleFiles []string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not on PATH (scripts/test.sh installs Debian's prometheus)")
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	if len(ruleFiles) > 0 {
		cfg.WriteString("rule_files:\n")
		for _, f := range ruleFiles {
			fmt.Fprintf(&cfg, "  - %q\n", f)
		}
	}
	cfg.WriteString("scrape_configs:\n")
	for _, j := range jobs {
		fmt.Fprintf(&cfg, "  - job_name: %q\n    static_configs:\n      - targets: [", j.name)
		for i, tg := range j.targets {
			if i > 0 {
				cfg.WriteString(", ")
			}
			fmt.Fprintf(&cfg, "%q", tg)
		}
		cfg.WriteString("]\n")
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := proctest.FreeAddr(t)
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- prometheus log:\n%s\n--- prometheus.yml:\n%s", b, cfg.String())
		}
	})
	t.Cleanup(func() { stopPID(cmd, exited) })
	p := &promServer{base: "http://" + addr, client: &http.Client{Timeout: promCallTimeout}}
	t.Cleanup(p.client.CloseIdleConnections)
	testenv.WaitFor(t, promReadyTimeout, "prometheus /-/ready", func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited at start: %v", err)
		default:
		}
		resp, err := p.client.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// stopPID stops a process by its PID: SIGTERM, then SIGKILL after
// promStopGrace.
func stopPID(cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(promStopGrace)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-exited
	}
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [time, "value"]
}

// query evaluates expr now through /api/v1/query. A query Prometheus
// refuses (a parse error) is returned as an error with its message.
func (p *promServer) query(expr string) ([]promSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), promCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/api/v1/query", strings.NewReader(url.Values{"query": {expr}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := p.getJSON(req, &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %q, want vector", r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// promRule is a rule as /api/v1/rules reports it.
type promRule struct {
	Name      string `json:"name"`
	State     string `json:"state"` // inactive, pending, firing
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

// rules returns the loaded alerting rules.
func (p *promServer) rules() ([]promRule, error) {
	ctx, cancel := context.WithTimeout(context.Background(), promCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/api/v1/rules?type=alert", nil)
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := p.getJSON(req, &r); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range r.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

func (p *promServer) getJSON(req *http.Request, v any) error {
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: status %d: %w", req.URL.Path, resp.StatusCode, err)
	}
	return nil
}

// runTool runs a command line tool with a timeout and returns its
// combined output.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not on PATH (scripts/test.sh installs it)", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
