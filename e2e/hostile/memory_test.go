package hostile

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/attack"
	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

const mib = 1 << 20

// procMemory reads a process's resident set and its peak (VmRSS and
// VmHWM of /proc/PID/status), in bytes.
func procMemory(pid int) (rss, peak int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %q: %w", name, value, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, fmt.Errorf("no VmRSS or VmHWM in /proc/%d/status", pid)
	}
	return rss, peak, sc.Err()
}

// echo sends one text message on s and collects its echo.
func echo(t *testing.T, s *testenv.Session, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, err := s.SendText(ctx, text); err != nil || st != http.StatusCreated {
		t.Fatalf("send %q: status %d, %v", text, st, err)
	}
	if got := s.Collect(t, 1, 30*time.Second); got[0].Data != text {
		t.Fatalf("echo of %q: %+v", text, got)
	}
}

// With the defaults, 1,000 attackers of each kind (slow bodies announcing
// 3 MiB, 3 MiB parameter bombs, forged hosts naming a live socket), none
// holding a session and all connected at once, cost `polysocket both`
// less than 64 MiB of resident memory at its peak (VmHWM), each is
// refused from its head with 403 socket and a close, and a live session
// echoes meanwhile. Without the fix the bombs alone take the process past
// the bound in their first batch (each parses into a ~47 MiB map).
func TestStrangersCostLittle(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	const n, bound = 1000, 64 * mib
	target := testenv.NewTarget(t, testenv.TargetOptions{})
	addr := proctest.FreeAddr(t)
	fqdn := "localhost:" + addr[strings.LastIndexByte(addr, ':')+1:]
	p := proctest.Start(t, proctest.Options{Addr: addr, Args: []string{
		"both", "--echo=false", "--create-rate", "0", "--fqdn", fqdn, "--log-level", "warn",
	}})
	cl := &testenv.Client{Base: p.URL(), HTTP: p.Client()}
	s := cl.Open(t, target.URL, nil)
	echo(t, s, "before")
	before, _, err := procMemory(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	check := func() error {
		_, peak, err := procMemory(p.PID())
		if err != nil {
			return err
		}
		if peak-before > bound {
			return fmt.Errorf("the relay's peak RSS is %d MiB over its %d MiB before the attack (bound %d MiB)", (peak-before)/mib, before/mib, bound/mib)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a, err := attack.Run(ctx, attack.Config{Addr: addr, FQDN: fqdn, LiveSocket: s.Socket, N: n, Check: check})
	if err == nil {
		echo(t, s, "during") // 3,000 attackers still connected
	}
	res := a.Release()
	if err != nil {
		t.Fatal(err)
	}
	for _, short := range res.Shortfalls(n) {
		t.Error(short)
	}
	echo(t, s, "after")
	rss, peak, _ := procMemory(p.PID())
	t.Logf("RSS %d MiB before, peak %d MiB, now %d MiB", before/mib, peak/mib, rss/mib)
}
