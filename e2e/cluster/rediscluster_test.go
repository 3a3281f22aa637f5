package cluster

import (
	"testing"

	"github.com/polysocket/polysocket/internal/redistest"
)

// TestRedisCluster runs the create, echo and limit checks against a
// three-master Redis Cluster, every process given all three nodes.
func TestRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t)
	url := rc.URL()
	c := startCluster(t, url, 2, 3)
	addToken(t, url, appToken, 0)
	addToken(t, url, limitedToken, 10)

	sessions := c.createSessions(t, 90, appToken)
	c.checkSpread(t, sessions)
	echoAll(t, sessions, "hello")
	if n, err := tokenConnections(t, url, appToken); err != nil || n != len(sessions) {
		t.Fatalf("token show: %d connections, %v; want %d", n, err, len(sessions))
	}
	c.checkLimit(t, limitedToken)
}
