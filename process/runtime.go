package process

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// defaultGCPercent is a relay's GOGC unless --gc-percent or $GOGC says
// otherwise.
const defaultGCPercent = 50

// TuneRuntime applies --gc-percent and --memory-limit. A relay's heap is
// mostly long-lived per-session state, and the runtime keeps up to
// (1+GOGC/100) times the live heap resident, so GOGC is the main lever
// on RSS per idle session; it costs GC CPU in proportion to the
// allocation rate, which an idle relay hardly has.
//
// With gcPercent 0 and no $GOGC a relay runs at defaultGCPercent: at
// 5,000 idle sessions that took RSS from 34 to 27 KiB a session, and
// echo at C = 100 moved as many messages as at Go's 100 (docs/BENCHMARKS.md).
// memoryLimit "" sets none.
func TuneRuntime(gcPercent int, memoryLimit string, log *zap.Logger) error {
	p := gcPercent
	if p < 0 {
		return fmt.Errorf("--gc-percent %d: must be positive", p)
	}
	if p == 0 && os.Getenv("GOGC") == "" {
		p = defaultGCPercent
	}
	if p != 0 {
		debug.SetGCPercent(p)
		log.Debug("GC percent set", zap.Int("percent", p))
	}
	if memoryLimit != "" {
		n, err := parseBytes(memoryLimit)
		if err != nil {
			return fmt.Errorf("--memory-limit: %w", err)
		}
		debug.SetMemoryLimit(n)
		log.Info("memory limit set", zap.Int64("bytes", n))
	}
	return nil
}

// parseBytes reads a byte count with an optional binary unit, as
// GOMEMLIMIT does: 1073741824, 512MiB, 2GiB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a positive byte count like 512MiB", s)
	}
	return n * mult, nil
}
