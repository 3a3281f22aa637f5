package process_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/process"
	"github.com/polysocket/polysocket/token"
	"go.uber.org/zap/zaptest"
)

// Build assembles `both` from a Setup as the CLI does: once /readyz
// answers, a create with the development token reaches the built-in
// echo through the relay's own address (the guard sends it to the
// echo backend), and Run returns at cancel.
func TestBuildBoth(t *testing.T) {
	s := process.DefaultSetup()
	s.Role, s.Listen, s.AdminListen, s.Log = process.RoleBoth, "127.0.0.1:0", "off", zaptest.NewLogger(t)
	s.DrainTimeout, s.CloseGrace = 0, 0
	s.DevToken = true
	s.Tokens = func(dev token.Token) (*token.Static, error) { return token.NewStatic(dev) }
	p, release, err := process.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		release()
	}()
	base := "http://" + p.Addr().String()
	testenv.WaitFor(t, 5*time.Second, "/readyz", func() bool { code, _ := get(t, base+"/readyz", ""); return code == http.StatusOK })
	code, body := get(t, base+"/create?from=t&token=dev&target=ws://"+p.Addr().String()+"/echo", "")
	if code != http.StatusOK || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("create: %d %s", code, body)
	}
}

// A bad Setup fails Build with the flag's name and leaves nothing
// open.
func TestBuildBadSetup(t *testing.T) {
	s := process.DefaultSetup()
	s.Role, s.Listen, s.AdminListen, s.Log = process.RoleBoth, "127.0.0.1:0", "off", zaptest.NewLogger(t)
	s.Tokens = func(dev token.Token) (*token.Static, error) { return token.NewStatic(dev) }
	s.DevToken = true
	s.Guard.AllowCIDR = []string{"not-a-cidr"}
	if _, _, err := process.Build(s); err == nil || !strings.Contains(err.Error(), "--allow-cidr") {
		t.Fatalf("Build: %v, want an --allow-cidr error", err)
	}
}
