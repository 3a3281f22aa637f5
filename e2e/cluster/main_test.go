package cluster

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/polysocket/polysocket/internal/proctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// rueidis' cluster client closes connections it dropped from its
		// slot map in an unowned goroutine that sleeps 5s first
		// (cluster.go, _refresh); Close does not stop it.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		goleak.Cleanup(func(code int) {
			proctest.RemoveBuild()
			os.Exit(code)
		}))
}
