// Package proctest runs the polysocket binary as real processes for
// tests: it builds the binary once per test run, starts it with --listen
// and --admin-listen on loopback addresses of their own, logging to a
// file, waits for /readyz (a relay is registered on the bus, the bus
// answers), and stops
// it by PID (SIGTERM, then SIGKILL) at cleanup, printing the end of its
// log when the test failed. A package using it calls RemoveBuild from
// TestMain.
package proctest

import (
	"bytes"
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

	"github.com/polysocket/polysocket/internal/testenv"
	"go.uber.org/goleak"
)

// Bounds of the process helpers.
const (
	buildTimeout  = 3 * time.Minute
	healthTimeout = 15 * time.Second
	stopGrace     = 15 * time.Second // SIGTERM to SIGKILL at cleanup
	logTail       = 150              // lines of a log printed on failure
	clientTimeout = 30 * time.Second // one request of Client
)

// The binary is built once per test run, into a directory RemoveBuild
// removes.
var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Build builds polysocket from the module root (once per test run) and
// returns the path of the binary.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		var root string
		root, buildErr = moduleRoot()
		if buildErr != nil {
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "polysocket-proctest-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "polysocket")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", buildPath, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// moduleRoot is the directory of the go.mod that holds the test's
// package, wherever that package sits in the module.
func moduleRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a module (GOMOD %q)", mod)
	}
	return filepath.Dir(mod), nil
}

// RemoveBuild removes the binary Build made; TestMain calls it after the
// tests.
func RemoveBuild() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// Env is the environment without POLYSOCKET_ variables, so the flags
// alone configure the processes.
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POLYSOCKET_") {
			env = append(env, kv)
		}
	}
	return env
}

// FreeAddr returns a 127.0.0.1 address with a port free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Options configure Start.
type Options struct {
	// Name names the process in its log file and failure messages;
	// default "polysocket".
	Name string
	// Addr is the address passed as --listen; default FreeAddr.
	Addr string
	// Admin is the address passed as --admin-listen (metrics and pprof);
	// default FreeAddr, so that processes never meet on the default
	// 127.0.0.1:9090. "off" turns the admin listener off.
	Admin string
	// Args are the subcommand and its flags; --listen Addr and
	// --admin-listen Admin are added.
	Args []string
	// TLS, if set, is the client configuration trusting the process's
	// certificate; the process is then reached over https.
	TLS *tls.Config
	// ShowLog prints the log at cleanup even when the test passed.
	ShowLog bool
	// NotReady makes Start wait for /healthz only, for a process that is
	// not expected to be ready at start (its Redis down, say). By
	// default Start waits for /readyz: a relay that answers /healthz may
	// not be registered on the bus yet, and a create then finds no relay.
	NotReady bool
}

// Proc is a polysocket process owned by a test.
type Proc struct {
	name    string
	addr    string
	admin   string // "off": none
	scheme  string // http or https
	logPath string
	cmd     *exec.Cmd
	client  *http.Client
	exited  chan struct{} // closed once cmd has been waited for
	err     error         // Wait's result, set before exited closes
}

// Start runs the binary as opts say, its output going to a log file in
// t.TempDir(), and waits until it answers /readyz (/healthz with
// NotReady). At cleanup it is
// stopped (SIGTERM, then SIGKILL after a grace period), and its log is
// printed if the test failed.
func Start(t testing.TB, opts Options) *Proc {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "polysocket"
	}
	if opts.Addr == "" {
		opts.Addr = FreeAddr(t)
	}
	if opts.Admin == "" {
		opts.Admin = FreeAddr(t)
	}
	bin := Build(t)
	p := &Proc{
		name:    opts.Name,
		addr:    opts.Addr,
		admin:   opts.Admin,
		scheme:  "http",
		logPath: filepath.Join(t.TempDir(), opts.Name+".log"),
		exited:  make(chan struct{}),
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	if opts.TLS != nil {
		p.scheme = "https"
		tr.TLSClientConfig = opts.TLS
	}
	p.client = &http.Client{Transport: tr, Timeout: clientTimeout}
	t.Cleanup(tr.CloseIdleConnections)
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	args := append(append([]string(nil), opts.Args...), "--listen", opts.Addr, "--admin-listen", opts.Admin)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = Env()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	// Cleanups run last-in first-out: the log is printed after the stop,
	// so it is complete.
	t.Cleanup(func() {
		if t.Failed() || opts.ShowLog {
			t.Logf("--- log of %s (%s), last %d lines:\n%s", p.name, strings.Join(args, " "), logTail, p.LogTail(logTail))
		}
	})
	t.Cleanup(p.Stop)
	path := "/readyz"
	if opts.NotReady {
		path = "/healthz"
	}
	p.awaitHealthy(t, opts.TLS, path)
	return p
}

// awaitHealthy polls path (/readyz or /healthz) until it answers 200,
// and fails the test if the process exits first or healthTimeout passes.
func (p *Proc) awaitHealthy(t testing.TB, tlsConf *tls.Config, path string) {
	t.Helper()
	// A client of its own: short timeouts, and no idle connection left
	// for the process's Shutdown to wait on.
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConf}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: time.Second, Transport: tr}
	testenv.WaitFor(t, healthTimeout, p.name+" "+path+" on "+p.addr+" to answer 200", func() bool {
		t.Helper()
		select {
		case <-p.exited:
			t.Fatalf("%s exited at start (%v):\n%s", p.name, p.err, p.LogTail(logTail))
		default:
		}
		resp, err := client.Get(p.URL() + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Name is the name the process was started with.
func (p *Proc) Name() string { return p.name }

// Addr is the host:port the process serves on.
func (p *Proc) Addr() string { return p.addr }

// URL is the process's base URL.
func (p *Proc) URL() string { return p.scheme + "://" + p.addr }

// AdminURL is the base URL of the process's admin listener (plain
// HTTP: /metrics, /debug/pprof/); "" when it is off.
func (p *Proc) AdminURL() string {
	if p.admin == "off" {
		return ""
	}
	return "http://" + p.admin
}

// Client is an HTTP client that reaches the process (trusting its
// certificate with TLS); its idle connections close at cleanup.
func (p *Proc) Client() *http.Client { return p.client }

// PID is the process's id (its /proc entry tells its memory).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// WaitExit waits up to d for the process to exit and returns Wait's
// error; the test fails if it is still running.
func (p *Proc) WaitExit(t testing.TB, d time.Duration) error {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.exited:
		return p.err
	case <-timer.C:
		t.Fatalf("%s did not exit within %v", p.name, d)
		return nil
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after stopGrace. It
// returns at once if the process has exited, and is safe to call again
// and from several goroutines.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Kill9 kills the process with SIGKILL, as a crash would, and waits for
// it.
func (p *Proc) Kill9() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// LogTail returns the last n lines of the process's log.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Main is a TestMain for a package of process tests: it runs the tests,
// checks that no goroutine leaked (goleak), and removes the built binary.
func Main(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		RemoveBuild()
		os.Exit(code)
	}))
}
