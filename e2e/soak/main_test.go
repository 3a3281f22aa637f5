package soak

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/polysocket/polysocket/internal/proctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		proctest.RemoveBuild()
		os.Exit(code)
	}))
}
