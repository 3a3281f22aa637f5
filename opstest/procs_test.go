package opstest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the process helpers.
const (
	buildTimeout  = 3 * time.Minute
	healthTimeout = 15 * time.Second
	stopGrace     = 15 * time.Second // SIGTERM to SIGKILL at cleanup
	logTail       = 80               // lines of a log printed on failure
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// binary builds polysocket once per test run and returns its path.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "polysocket-opstest-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "polysocket")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", buildPath, "..").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func removeBinary() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// proc is a polysocket process owned by a test.
type proc struct {
	addr    string
	scheme  string // http or https
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been waited for
	err     error         // Wait's result, set before exited closes
	// client reaches the process (trusting its certificate with TLS).
	client *http.Client
}

// procOptions configure startProc.
type procOptions struct {
	// TLS, if set, is the client configuration trusting the process's
	// certificate; the process is then reached over https.
	TLS *tls.Config
}

// startProc runs the binary with args (the subcommand first) plus
// --listen addr, logging to a file, and waits for /healthz. At cleanup it
// is stopped (SIGTERM, SIGKILL after stopGrace) and its log printed if
// the test failed.
func startProc(t testing.TB, addr string, opts procOptions, args ...string) *proc {
	t.Helper()
	p := &proc{addr: addr, scheme: "http", logPath: filepath.Join(t.TempDir(), "polysocket.log"), exited: make(chan struct{})}
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	if opts.TLS != nil {
		p.scheme = "https"
		tr.TLSClientConfig = opts.TLS
	}
	p.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	args = append(args, "--listen", addr, "--log-format", "json", "--log-level", "info")
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = cleanEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("OPSTEST_LOGS") != "" {
			t.Logf("--- log of polysocket %s:\n%s", strings.Join(args, " "), tail(p.logPath, logTail))
		}
	})
	t.Cleanup(p.stop)
	if err := p.awaitHealthy(); err != nil {
		t.Fatal(err)
	}
	return p
}

// url is the process's base URL.
func (p *proc) url() string { return p.scheme + "://" + p.addr }

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POLYSOCKET_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) awaitHealthy() error {
	deadline := time.Now().Add(healthTimeout)
	for {
		resp, err := p.client.Get(p.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("process exited before it was healthy: %v", p.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %v: %v", healthTimeout, err)
		}
	}
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitExit waits up to d for the process to exit and returns its error.
func (p *proc) waitExit(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(d):
		t.Fatalf("process did not exit within %v", d)
		return nil
	}
}

// stop ends the process: SIGTERM, then SIGKILL after stopGrace.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// scrape reads /metrics into a map from series (name{labels} as printed)
// to value.
func (p *proc) scrape(t testing.TB) map[string]float64 {
	t.Helper()
	resp, err := p.client.Get(p.url() + "/metrics")
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

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
