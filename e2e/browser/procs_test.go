package browser

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
)

// Bounds of the helper processes (squid, nginx).
const (
	procReadyTimeout = 30 * time.Second // start to listening
	procStopGrace    = 10 * time.Second // SIGTERM to SIGKILL
)

// sbin finds a daemon's binary on PATH or in /usr/sbin (off a normal
// user's PATH), or fails the test naming the Debian package.
func sbin(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the proxy tests need %s (Debian: apt-get install %s): %v", name, pkg, err)
	}
	return p
}

// freePort returns a loopback port that was free a moment ago, for a
// program that takes its port in a config file.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = ln.Close()
	return port
}

// scratchDir is a directory any user may write, removed at cleanup:
// squid started as root writes its logs as its cache_effective_user.
func scratchDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "polysocket-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startProc runs a helper process in its own process group until t's
// cleanup, and waits until it listens on addr. At cleanup it is stopped
// by its PID (SIGTERM, then SIGKILL for its whole group); when t failed,
// the files named by logs are printed.
func startProc(t *testing.T, addr string, logs []string, name string, args ...string) {
	t.Helper()
	out := &lockedBuffer{max: 1 << 20}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(procStopGrace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
		}
	})
	testenv.WaitEvery(t, procReadyTimeout, 50*time.Millisecond, name+" to listen on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("%s exited: %v\n%s", name, cmd.ProcessState, out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

// squid is Debian's squid as a forward proxy on a loopback port, with
// Debian's default access rules (CONNECT only to port 443, so a ws://
// WebSocket through it fails), that sends every request for localhost
// and *.localhost (which it cannot resolve) to the front at frontPort.
type squid struct {
	addr string
	dir  string
}

// squidConf is the generated config: Debian's defaults first, then the
// route to the relay and what a test proxy needs (no cache, no pinger,
// files in dir, a quick shutdown).
const squidConf = `http_port %[1]s
acl SSL_ports port 443
acl Safe_ports port 80 21 443 70 210 1025-65535 280 488 591 777
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access allow localhost
http_access deny all

acl relay_hosts dstdomain .localhost
cache_peer 127.0.0.1 parent %[2]s 0 no-query no-digest originserver name=relay
cache_peer_access relay allow relay_hosts
cache_peer_access relay deny all
never_direct allow relay_hosts

cache deny all
pinger_enable off
visible_hostname polysocket-test
pid_filename %[3]s/squid.pid
cache_log %[3]s/cache.log
access_log stdio:%[3]s/access.log
coredump_dir %[3]s
shutdown_lifetime 1 seconds
`

// startSquid runs squid on addr (127.0.0.1:port) until t's cleanup.
// Started as root, squid drops to its cache_effective_user (Debian:
// proxy), which writes the logs: the directory is open to it.
func startSquid(t *testing.T, addr, frontPort string) *squid {
	t.Helper()
	bin := sbin(t, "squid", "squid")
	dir := scratchDir(t, "squid")
	conf := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(squidConf, addr, frontPort, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, addr, []string{filepath.Join(dir, "cache.log"), filepath.Join(dir, "access.log")}, bin, "-N", "-f", conf)
	return &squid{addr: addr, dir: dir}
}

// accessLog returns squid's access log so far (written as requests end).
func (s *squid) accessLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "access.log"))
	return string(b)
}

// nginxConf is a reverse proxy with a plain proxy_pass: no Upgrade or
// Connection headers are passed on, so a WebSocket handshake through it
// reaches the backend as a plain GET and fails.
const nginxConf = `worker_processes 1;
error_log %[1]s/error.log info;
pid %[1]s/nginx.pid;
events { worker_connections 64; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[2]s;
    location / { proxy_pass http://%[3]s; }
  }
}
`

// startNginx runs nginx on a free loopback port in front of backend
// (host:port) until t's cleanup, and returns its address.
func startNginx(t *testing.T, backend string) string {
	t.Helper()
	bin := sbin(t, "nginx", "nginx-light")
	dir := scratchDir(t, "nginx")
	addr := "127.0.0.1:" + freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, addr, backend)), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, addr, []string{filepath.Join(dir, "error.log"), filepath.Join(dir, "access.log")},
		bin, "-p", dir, "-c", conf, "-g", "daemon off;")
	return addr
}

// hangServer accepts TCP connections and never answers: an upgrade that
// hangs, as behind a proxy or load balancer that swallows it.
type hangServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

// newHangServer listens on a free loopback port until t's cleanup.
func newHangServer(t *testing.T) *hangServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangServer{ln: ln}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		h.wg.Wait()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			_ = c.Close()
		}
	})
	return h
}

func (h *hangServer) addr() string { return h.ln.Addr().String() }

// accepted is how many connections came so far.
func (h *hangServer) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// dialVia makes the relay reach route's keys at their values: the relay
// sits on the target's side of a broken proxy, as next to the service.
func dialVia(route map[string]string) func(*testenv.StackOptions) {
	return func(o *testenv.StackOptions) {
		d := &net.Dialer{KeepAlive: 15 * time.Second}
		o.Session.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := route[addr]; ok {
				addr = to
			}
			return d.DialContext(ctx, network, addr)
		}
	}
}

// hostPort is the host:port of a ws:// URL.
func hostPort(wsURL string) string {
	return strings.TrimPrefix(strings.TrimPrefix(wsURL, "ws://"), "wss://")
}
