package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"os"
	"sort"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The chart is drawn with the standard image packages and a bitmap font
// only, so that making the figures in docs/ needs nothing beyond the
// module's own dependencies.

// Chart sizes, in pixels.
const (
	ChartWidth  = 1200
	ChartHeight = 560
)

// Series colours (the test looks for them in the image) and the rest.
var (
	// relayColor draws the "polysocket relay" series.
	relayColor = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	// directColor draws the "direct WebSocket" series.
	directColor = color.RGBA{0xe6, 0x55, 0x0d, 0xff}

	chartBG   = color.RGBA{0xff, 0xff, 0xff, 0xff}
	chartInk  = color.RGBA{0x22, 0x22, 0x22, 0xff}
	chartGrid = color.RGBA{0xe2, 0xe2, 0xe2, 0xff}
	chartDim  = color.RGBA{0x66, 0x66, 0x66, 0xff}
)

// chartPoint is one concurrency level of one series.
type chartPoint struct {
	c    float64 // concurrency
	rate float64 // msgs/s
	p99  float64 // ms
}

// chartData is the echo results sorted by concurrency.
type chartData struct {
	relay, direct []chartPoint
	size          int
}

// errNoEchoResults is returned when no report is an echo run.
var errNoEchoResults = errors.New("chart: no echo results among the reports")

// collectChart keeps the echo reports, one per concurrency, sorted.
// Other modes are skipped so that a whole results folder can be given.
func collectChart(reps []*Report) (chartData, error) {
	var d chartData
	seen := map[int]bool{}
	for _, r := range reps {
		if r == nil || r.Relay == nil || r.Relay.Mode != ModeEcho {
			continue
		}
		c := r.Relay.Concurrency
		if c < 1 {
			return d, fmt.Errorf("chart: an echo result has concurrency %d", c)
		}
		if seen[c] {
			return d, fmt.Errorf("chart: two echo results at C=%d", c)
		}
		seen[c] = true
		d.size = r.Relay.Size
		d.relay = append(d.relay, chartPoint{float64(c), r.Relay.MsgsPerSec, r.Relay.Latency.P99})
		if r.Direct != nil {
			d.direct = append(d.direct, chartPoint{float64(c), r.Direct.MsgsPerSec, r.Direct.Latency.P99})
		}
	}
	if len(d.relay) == 0 {
		return d, errNoEchoResults
	}
	byC := func(s []chartPoint) { sort.Slice(s, func(i, j int) bool { return s[i].c < s[j].c }) }
	byC(d.relay)
	byC(d.direct)
	return d, nil
}

// RenderChart draws the echo reports among reps (relay and, where run,
// the direct baseline) as two panels: msgs/s against C, and RTT p99
// against C, both with a log-scale C axis. An empty title gets one
// naming the message size.
func RenderChart(reps []*Report, title string) (*image.RGBA, error) {
	d, err := collectChart(reps)
	if err != nil {
		return nil, err
	}
	if title == "" {
		title = fmt.Sprintf("Echo, %d-byte messages: polysocket relay vs direct WebSocket", d.size)
	}
	img := image.NewRGBA(image.Rect(0, 0, ChartWidth, ChartHeight))
	draw.Draw(img, img.Bounds(), image.NewUniform(chartBG), image.Point{}, draw.Src)
	drawText(img, title, ChartWidth/2, 12, chartInk, 2, alignCenter)
	drawLegend(img, ChartWidth/2, 50)

	xr := logRange(d, func(p chartPoint) float64 { return p.c }, 1, 1000)
	const top, bottom = 90, ChartHeight - 60
	left := image.Rect(95, top, ChartWidth/2-30, bottom)
	right := image.Rect(ChartWidth/2+95, top, ChartWidth-30, bottom)

	rate := func(p chartPoint) float64 { return p.rate }
	ymax := 0.0
	for _, s := range [][]chartPoint{d.relay, d.direct} {
		for _, p := range s {
			ymax = math.Max(ymax, p.rate)
		}
	}
	rateAxis := linearAxis(ymax)
	drawPanel(img, left, "Throughput", "echoed msgs/s", xr, rateAxis, d, rate)

	p99 := func(p chartPoint) float64 { return p.p99 }
	drawPanel(img, right, "Round-trip time, 99th percentile", "RTT p99 (ms)", xr, logRange(d, p99, 0, 0), d, p99)
	return img, nil
}

// WriteChart renders the chart (see RenderChart) as a PNG to w.
func WriteChart(w io.Writer, reps []*Report, title string) error {
	img, err := RenderChart(reps, title)
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("chart: encoding the PNG: %w", err)
	}
	return nil
}

// axis maps values to [0, 1] and lists its ticks.
type axis struct {
	lo, hi float64
	log    bool
	ticks  []float64
}

func (a axis) frac(v float64) float64 {
	if a.log {
		return (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// usable reports whether v can be placed on the axis (a log axis has no
// place for zero).
func (a axis) usable(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && (!a.log || v > 0)
}

// logRange is a log axis over whole decades covering the positive values
// f takes in d, and at least [atLeastLo, atLeastHi] when those are set.
func logRange(d chartData, f func(chartPoint) float64, atLeastLo, atLeastHi float64) axis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range [][]chartPoint{d.relay, d.direct} {
		for _, p := range s {
			if v := f(p); v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if atLeastLo > 0 {
		lo, hi = math.Min(lo, atLeastLo), math.Max(hi, atLeastHi)
	}
	if math.IsInf(lo, 1) { // no positive value: any decade will do
		lo, hi = 1, 10
	}
	elo, ehi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if ehi <= elo {
		ehi = elo + 1
	}
	a := axis{lo: math.Pow(10, elo), hi: math.Pow(10, ehi), log: true}
	for e := elo; e <= ehi; e++ {
		a.ticks = append(a.ticks, math.Pow(10, e))
	}
	return a
}

// linearAxis runs from zero to a round number at or above top, with
// ticks at 1, 2 or 5 times a power of ten (about five of them).
func linearAxis(top float64) axis {
	if top <= 0 {
		top = 1
	}
	raw := top / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	a := axis{lo: 0, hi: math.Ceil(top/step) * step}
	for v := 0.0; v <= a.hi+step/2; v += step {
		a.ticks = append(a.ticks, v)
	}
	return a
}

// tickLabel formats an axis value short: 0.1, 5, 20k, 1.5M.
func tickLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}

// drawPanel draws one panel's frame, grid, ticks, labels and both series.
func drawPanel(img *image.RGBA, r image.Rectangle, title, ylabel string, x, y axis, d chartData, f func(chartPoint) float64) {
	px := func(v float64) int { return r.Min.X + int(math.Round(x.frac(v)*float64(r.Dx()))) }
	py := func(v float64) int { return r.Max.Y - int(math.Round(y.frac(v)*float64(r.Dy()))) }
	for _, t := range x.ticks {
		line(img, px(t), r.Min.Y, px(t), r.Max.Y, 0, chartGrid)
		line(img, px(t), r.Max.Y, px(t), r.Max.Y+5, 0, chartInk)
		// C is counted in full (1000, not 1k): it is a number of sessions.
		drawText(img, strconv.FormatFloat(t, 'f', -1, 64), px(t), r.Max.Y+9, chartInk, 1, alignCenter)
	}
	for _, t := range y.ticks {
		line(img, r.Min.X, py(t), r.Max.X, py(t), 0, chartGrid)
		line(img, r.Min.X-5, py(t), r.Min.X, py(t), 0, chartInk)
		drawText(img, tickLabel(t), r.Min.X-9, py(t)-6, chartInk, 1, alignRight)
	}
	// The frame goes over the grid.
	line(img, r.Min.X, r.Min.Y, r.Max.X, r.Min.Y, 0, chartDim)
	line(img, r.Min.X, r.Max.Y, r.Max.X, r.Max.Y, 0, chartInk)
	line(img, r.Min.X, r.Min.Y, r.Min.X, r.Max.Y, 0, chartInk)
	line(img, r.Max.X, r.Min.Y, r.Max.X, r.Max.Y, 0, chartDim)

	drawText(img, title, (r.Min.X+r.Max.X)/2, r.Min.Y-22, chartInk, 1, alignCenter)
	drawText(img, "concurrent sessions C (log scale)", (r.Min.X+r.Max.X)/2, r.Max.Y+30, chartInk, 1, alignCenter)
	yl := ylabel
	if y.log {
		yl += ", log scale"
	}
	drawVerticalText(img, yl, r.Min.X-75, (r.Min.Y+r.Max.Y)/2, chartInk)

	series := func(s []chartPoint, col color.RGBA, marker func(*image.RGBA, int, int, color.RGBA)) {
		var prev image.Point
		have := false
		for _, p := range s {
			v := f(p)
			if !x.usable(p.c) || !y.usable(v) {
				have = false // a gap rather than a line through nothing
				continue
			}
			pt := image.Pt(px(p.c), py(v))
			if have {
				line(img, prev.X, prev.Y, pt.X, pt.Y, 1, col)
			}
			prev, have = pt, true
		}
		for _, p := range s {
			if v := f(p); x.usable(p.c) && y.usable(v) {
				marker(img, px(p.c), py(v), col)
			}
		}
	}
	series(d.direct, directColor, squareMarker)
	series(d.relay, relayColor, discMarker)
}

// drawLegend draws both series' swatches centred on cx at baseline y.
func drawLegend(img *image.RGBA, cx, y int) {
	items := []struct {
		name   string
		col    color.RGBA
		marker func(*image.RGBA, int, int, color.RGBA)
	}{
		{"polysocket relay", relayColor, discMarker},
		{"direct WebSocket", directColor, squareMarker},
	}
	const swatch, gap = 36, 30
	total := 0
	for i, it := range items {
		total += swatch + 8 + textWidth(it.name)
		if i > 0 {
			total += gap
		}
	}
	x := cx - total/2
	for _, it := range items {
		line(img, x, y, x+swatch, y, 1, it.col)
		it.marker(img, x+swatch/2, y, it.col)
		x += swatch + 8
		drawText(img, it.name, x, y-7, chartInk, 1, alignLeft)
		x += textWidth(it.name) + gap
	}
}

// line draws a line from (x0, y0) to (x1, y1) with Bresenham's
// algorithm, stamping a disc of radius r at every step (r = 0: one
// pixel wide).
func line(img *image.RGBA, x0, y0, x1, y1, r int, col color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		disc(img, x0, y0, r, col)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

// disc fills the pixels within r of (cx, cy).
func disc(img *image.RGBA, cx, cy, r int, col color.RGBA) {
	for y := -r; y <= r; y++ {
		for x := -r; x <= r; x++ {
			if x*x+y*y <= r*r+r {
				img.SetRGBA(cx+x, cy+y, col)
			}
		}
	}
}

func discMarker(img *image.RGBA, x, y int, col color.RGBA) { disc(img, x, y, 5, col) }

func squareMarker(img *image.RGBA, x, y int, col color.RGBA) {
	draw.Draw(img, image.Rect(x-4, y-4, x+5, y+5), image.NewUniform(col), image.Point{}, draw.Src)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

type align int

const (
	alignLeft align = iota
	alignCenter
	alignRight
)

// chartFace is the bitmap font: 7×13 pixels a glyph.
var chartFace = basicfont.Face7x13

func textWidth(s string) int { return font.MeasureString(chartFace, s).Ceil() }

// textImage renders s once at its natural size, for scaling or turning.
func textImage(s string, col color.RGBA) *image.RGBA {
	m := chartFace.Metrics()
	t := image.NewRGBA(image.Rect(0, 0, textWidth(s), (m.Ascent + m.Descent).Ceil()))
	fd := font.Drawer{Dst: t, Src: image.NewUniform(col), Face: chartFace, Dot: fixed.Point26_6{Y: m.Ascent}}
	fd.DrawString(s)
	return t
}

// drawText draws s with its top at y, scaled by a whole factor, placed
// at x by a.
func drawText(img *image.RGBA, s string, x, y int, col color.RGBA, scale int, a align) {
	t := textImage(s, col)
	w := t.Bounds().Dx() * scale
	switch a {
	case alignCenter:
		x -= w / 2
	case alignRight:
		x -= w
	}
	if scale == 1 {
		draw.Draw(img, t.Bounds().Add(image.Pt(x, y)), t, image.Point{}, draw.Over)
		return
	}
	b := t.Bounds()
	for ty := b.Min.Y; ty < b.Max.Y; ty++ {
		for tx := b.Min.X; tx < b.Max.X; tx++ {
			if t.RGBAAt(tx, ty).A == 0 {
				continue
			}
			r := image.Rect(x+tx*scale, y+ty*scale, x+(tx+1)*scale, y+(ty+1)*scale)
			draw.Draw(img, r, image.NewUniform(t.RGBAAt(tx, ty)), image.Point{}, draw.Over)
		}
	}
}

// drawVerticalText draws s reading upwards, its left edge at x and
// centred on y.
func drawVerticalText(img *image.RGBA, s string, x, y int, col color.RGBA) {
	t := textImage(s, col)
	b := t.Bounds()
	y0 := y + b.Dx()/2
	for ty := b.Min.Y; ty < b.Max.Y; ty++ {
		for tx := b.Min.X; tx < b.Max.X; tx++ {
			if c := t.RGBAAt(tx, ty); c.A != 0 {
				// Turned a quarter anticlockwise: the text's x runs up,
				// its y runs right.
				img.SetRGBA(x+ty, y0-tx, blend(img.RGBAAt(x+ty, y0-tx), c))
			}
		}
	}
}

// blend puts premultiplied c over dst.
func blend(dst, c color.RGBA) color.RGBA {
	k := 255 - uint32(c.A)
	return color.RGBA{
		R: uint8(uint32(c.R) + uint32(dst.R)*k/255),
		G: uint8(uint32(c.G) + uint32(dst.G)*k/255),
		B: uint8(uint32(c.B) + uint32(dst.B)*k/255),
		A: uint8(uint32(c.A) + uint32(dst.A)*k/255),
	}
}

// ReadReports reads saved `bench --json` results, one file each.
func ReadReports(paths []string) ([]*Report, error) {
	var reps []*Report
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		reps = append(reps, &r)
	}
	return reps, nil
}
