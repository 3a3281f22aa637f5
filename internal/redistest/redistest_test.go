package redistest_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/polysocket/polysocket/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServer(t *testing.T) {
	s := redistest.Start(t, redistest.WithPassword("pw"))
	if _, err := redistest.Do(s.Addr(), "PING"); err == nil {
		t.Fatal("PING without AUTH succeeded on a password-protected server")
	}
	if got := s.URL(); got != "redis://:pw@"+s.Addr() {
		t.Errorf("URL = %q", got)
	}
	s.Restart()
	if _, err := redistest.Do(s.Addr(), "AUTH", "pw"); err != nil {
		t.Fatalf("AUTH after Restart: %v", err)
	}
	s.Stop()
	if _, err := redistest.Do(s.Addr(), "PING"); err == nil {
		t.Fatal("PING after Stop succeeded")
	}
	s.Stop() // idempotent
}

func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	if len(c.Nodes) != 3 {
		t.Fatalf("%d nodes", len(c.Nodes))
	}
	info, err := redistest.Do(c.Nodes[2].Addr(), "CLUSTER", "INFO")
	if err != nil {
		t.Fatal(err)
	}
	if want := "cluster_known_nodes:3"; !strings.Contains(info, want) {
		t.Fatalf("CLUSTER INFO lacks %s:\n%s", want, info)
	}
}
