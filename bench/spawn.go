package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Child is a `polysocket both` that Spawn started for a benchmark.
type Child struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{} // closed once cmd has been waited for
}

// Spawn starts the binary exe as `polysocket both` on a free loopback
// port, its output on stderr, and waits until it answers /readyz (its
// relay is registered: a create finds it). Stop it with Stop.
func Spawn(ctx context.Context, exe string) (*Child, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("--spawn: finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(exe, "both", "--listen", addr, "--log-level", "warn", "--drain-timeout", "1s", "--echo=false", "--create-rate", "0", "--admin-listen", "off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("--spawn: %w", err)
	}
	ch := &Child{cmd: cmd, url: "http://" + addr, exited: make(chan struct{})}
	go func() {
		defer close(ch.exited)
		_ = cmd.Wait()
	}()
	if err := ch.awaitReady(ctx); err != nil {
		ch.Stop()
		return nil, err
	}
	return ch, nil
}

// awaitReady polls /readyz for up to 10s.
func (ch *Child) awaitReady(ctx context.Context) error {
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		resp, err := hc.Get(ch.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ch.exited:
			return errors.New("--spawn: polysocket both exited at start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("--spawn: polysocket both did not answer /readyz within 10s")
}

// URL is the child's base URL, its router.
func (ch *Child) URL() string { return ch.url }

// PID is the child's process id, for its RSS.
func (ch *Child) PID() int { return ch.cmd.Process.Pid }

// Stop sends SIGTERM to the child (by its pid) and kills it if it has
// not exited after 15s.
func (ch *Child) Stop() {
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.exited:
	case <-time.After(15 * time.Second):
		_ = ch.cmd.Process.Kill()
		<-ch.exited
	}
}
