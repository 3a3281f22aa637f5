package hostile

import (
	"os"
	"testing"

	"github.com/polysocket/polysocket/internal/proctest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		proctest.RemoveBuild()
		os.Exit(code)
	}))
}
