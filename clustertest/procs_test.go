package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	buildTimeout   = 3 * time.Minute
	healthTimeout  = 15 * time.Second
	stopGrace      = 10 * time.Second // SIGTERM to SIGKILL
	commandTimeout = 20 * time.Second // one admin command (token ...)
	logTail        = 150              // lines of a process log printed on failure
)

// The binary is built once per test run, into a directory TestMain
// removes.
var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// binary builds polysocket (once) and returns its path.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "polysocket-clustertest-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "polysocket")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		// The module root is the parent of this package's directory.
		cmd := exec.CommandContext(ctx, "go", "build", "-o", buildPath, "..")
		out, err := cmd.CombinedOutput()
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

// proc is a polysocket process owned by a test.
type proc struct {
	name    string
	addr    string // host:port it serves HTTP on
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been waited for

	stopOnce sync.Once
}

// startProc runs the binary with args (the subcommand first), its output
// going to a log file in t.TempDir(), and waits until addr answers
// /healthz. At cleanup it is stopped (SIGTERM, then SIGKILL after
// stopGrace), and its log is printed if the test failed.
func startProc(t testing.TB, name, addr string, args ...string) *proc {
	t.Helper()
	bin := binary(t)
	p := &proc{name: name, addr: addr, logPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = cleanEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	// Cleanups run last-in first-out: the log is printed after the stop,
	// so it is complete.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of %s (%s), last %d lines:\n%s", name, strings.Join(args, " "), logTail, tail(p.logPath, logTail))
		}
	})
	t.Cleanup(p.stop)
	if err := p.awaitHealthy(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// cleanEnv is the environment without POLYSOCKET_ variables, so the
// flags alone configure the processes.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POLYSOCKET_") {
			env = append(env, kv)
		}
	}
	return env
}

// awaitHealthy polls /healthz until it answers 200, the process exits, or
// healthTimeout passes.
func (p *proc) awaitHealthy() error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(healthTimeout)
	for {
		resp, err := client.Get("http://" + p.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited at start (%v):\n%s", p.cmd.ProcessState, tail(p.logPath, logTail))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/healthz on %s not ok after %v: %v", p.addr, healthTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to exit, sending SIGKILL
// if it takes longer than stopGrace. It is idempotent.
func (p *proc) stop() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-p.exited:
		case <-t.C:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// kill9 kills the process with SIGKILL, as a crash would, and waits for
// it.
func (p *proc) kill9() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// runCmd runs an admin command of the binary to completion and returns
// its standard output.
func runCmd(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("polysocket %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// addToken stores a token with the real `token add` command, allowing
// loopback targets from any origin.
func addToken(t testing.TB, redisURL, name string, limit int) {
	t.Helper()
	if _, err := runCmd(t, "token", "add", name, "--target", "ws://127.0.0.1:*", "--origin", "*",
		"--limit", strconv.Itoa(limit), "--redis", redisURL); err != nil {
		t.Fatal(err)
	}
}

// tokenConnections is the token's live connection count as
// `token show NAME --json` prints it.
func tokenConnections(t testing.TB, redisURL, name string) (int, error) {
	t.Helper()
	out, err := runCmd(t, "token", "show", name, "--json", "--redis", redisURL)
	if err != nil {
		return 0, err
	}
	var v struct {
		Connections *int `json:"connections"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return 0, fmt.Errorf("token show output %q: %w", out, err)
	}
	if v.Connections == nil {
		return 0, errors.New("token show: no connections field in " + out)
	}
	return *v.Connections, nil
}

// waitFor polls cond every 50ms until it holds, or fails the test after
// deadline, naming what it waited for.
func waitFor(t testing.TB, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
