package ops

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// acceptCounter is a loopback listener that counts the connections it
// accepts (and closes them at once).
type acceptCounter struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func newAcceptCounter(t *testing.T, addr string) *acceptCounter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptCounter{ln: ln}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			a.accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		a.wg.Wait()
	})
	return a
}

// TestSSRFThroughCreate asks a relay without --allow-private, through
// /create with a token that allows any ws:// target, for internal
// addresses in many spellings. Each is refused, and the listener on the
// loopback port never sees a connection.
func TestSSRFThroughCreate(t *testing.T) {
	lc := newAcceptCounter(t, "127.0.0.1:0")
	port := strconv.Itoa(lc.ln.Addr().(*net.TCPAddr).Port)
	// ::1 on the same port, where the system allows it, so that a dial
	// of localhost's IPv6 address would be seen too.
	var lc6 *acceptCounter
	if ln, err := net.Listen("tcp", "[::1]:"+port); err == nil {
		ln.Close()
		lc6 = newAcceptCounter(t, "[::1]:"+port)
	}
	p := startProc(t, proctest.Options{}, "both", "--echo=false", "--create-rate", "0",
		"--token", "open", "--token-target", "ws://*:*", "--dial-timeout", "3s")
	cl := &testenv.Client{Base: p.URL(), HTTP: p.Client(), Token: "open"}

	refused := map[string]bool{"dial": true, "target": true, "params": true}
	for _, target := range []string{
		"ws://localhost:" + port + "/",             // a name that resolves to 127.0.0.1
		"ws://127.0.0.1:" + port + "/",             // loopback itself
		"ws://[::ffff:127.0.0.1]:" + port + "/",    // IPv4-mapped IPv6
		"ws://[::ffff:7f00:1]:" + port + "/",       // the same, in hex
		"ws://[::1]:" + port + "/",                 // IPv6 loopback
		"ws://[::127.0.0.1]:" + port + "/",         // IPv4-compatible
		"ws://[64:ff9b::7f00:1]:" + port + "/",     // NAT64 of loopback
		"ws://0.0.0.0:" + port + "/",               // "this host"
		"ws://169.254.169.254/",                    // cloud metadata
		"ws://169.254.169.254:" + port + "/latest", // with a port
		"ws://2130706433:" + port + "/",            // decimal 127.0.0.1
		"ws://0x7f000001:" + port + "/",            // hexadecimal
		"ws://017700000001:" + port + "/",          // octal
		"ws://127.1:" + port + "/",                 // short form
		"ws://0177.0.0.1:" + port + "/",            // octal first octet
		"ws://10.0.0.1:" + port + "/",              // private
		"ws://[fd00:ec2::254]/",                    // AWS IPv6 metadata
	} {
		t.Run(target, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			r, _, err := cl.Create(ctx, target, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || !refused[r.Code] {
				t.Errorf("create %s: %+v; want a refusal with code dial, target or params", target, r)
			}
			t.Logf("%s: %s: %s", target, r.Code, r.Error)
		})
	}
	if n := lc.accepted.Load(); n != 0 {
		t.Errorf("the loopback listener accepted %d connections", n)
	}
	if lc6 != nil && lc6.accepted.Load() != 0 {
		t.Errorf("the ::1 listener accepted %d connections", lc6.accepted.Load())
	}
}
