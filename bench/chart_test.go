package bench

import (
	"bytes"
	"errors"
	"image/color"
	"image/png"
	"os"
	"testing"
)

// sampleReports are echo results at four concurrency levels, as a run
// of scripts/bench.sh would give, plus a stream result the chart skips.
func sampleReports() []*Report {
	echo := func(c int, rate, p99, drate, dp99 float64) *Report {
		res := func(path string, rate, p99 float64) *Result {
			return &Result{Path: path, Mode: ModeEcho, Concurrency: c, Size: 64, MsgsPerSec: rate, Latency: Latency{P50: p99 / 3, P99: p99}}
		}
		return &Report{Relay: res("relay", rate, p99), Direct: res("direct", drate, dp99)}
	}
	return []*Report{
		echo(100, 31000, 9.5, 46000, 4.1),
		echo(1, 2900, 0.9, 11000, 0.15),
		echo(1000, 27000, 80, 44000, 45),
		echo(10, 17000, 1.6, 38000, 0.6),
		{Relay: &Result{Path: "relay", Mode: ModeStream, Concurrency: 1000, Size: 64, MsgsPerSec: 150000}},
	}
}

// TestRenderChart checks that the PNG decodes at the chart's size and
// shows both series.
func TestRenderChart(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteChart(&buf, sampleReports(), ""); err != nil {
		t.Fatal(err)
	}
	if path := os.Getenv("BENCH_CHART_OUT"); path != "" {
		// For looking at the chart: BENCH_CHART_OUT=/tmp/c.png go test -run Chart
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("decoding the PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != ChartWidth || b.Dy() != ChartHeight {
		t.Fatalf("size %v, want %dx%d", b.Size(), ChartWidth, ChartHeight)
	}
	counts := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}
			if c == relayColor || c == directColor {
				counts[c]++
			}
		}
	}
	// The legend alone has a few hundred pixels of each colour; two
	// panels of three segments each have thousands.
	for name, c := range map[string]color.RGBA{"relay": relayColor, "direct": directColor} {
		if counts[c] < 1500 {
			t.Errorf("%s series: %d pixels of its colour, want at least 1500", name, counts[c])
		}
	}
}

func TestRenderChartErrors(t *testing.T) {
	if _, err := RenderChart(nil, ""); !errors.Is(err, errNoEchoResults) {
		t.Errorf("no reports: %v, want errNoEchoResults", err)
	}
	reps := sampleReports()
	reps = append(reps, reps[0])
	if _, err := RenderChart(reps, ""); err == nil {
		t.Error("two results at one concurrency: no error")
	}
}

func TestAxes(t *testing.T) {
	a := linearAxis(46000)
	if a.hi != 50000 || len(a.ticks) != 6 {
		t.Errorf("linearAxis(46000) = %v", a)
	}
	d := chartData{relay: []chartPoint{{c: 1, p99: 0.15}, {c: 1000, p99: 80}}}
	l := logRange(d, func(p chartPoint) float64 { return p.p99 }, 0, 0)
	if l.lo != 0.1 || l.hi != 100 || len(l.ticks) != 4 {
		t.Errorf("logRange over 0.15..80 = %v", l)
	}
	for v, want := range map[float64]string{0.1: "0.1", 5: "5", 20000: "20k", 1.5e6: "1.5M"} {
		if got := tickLabel(v); got != want {
			t.Errorf("tickLabel(%v) = %q, want %q", v, got, want)
		}
	}
}
