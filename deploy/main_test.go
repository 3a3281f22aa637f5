package deploy_test

import (
	"testing"

	"github.com/polysocket/polysocket/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }
