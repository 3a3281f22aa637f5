package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// ErrorKind is one distinct error text and how often it happened.
type ErrorKind struct {
	Error string `json:"error"`
	Count int64  `json:"count"`
}

// Result is one path's figures: through the relay, or the direct
// WebSocket baseline.
type Result struct {
	// Path is "relay" or "direct".
	Path string `json:"path"`
	Mode Mode   `json:"mode"`
	// Concurrency is the number of sessions asked for.
	Concurrency int `json:"concurrency"`
	Size        int `json:"size"`
	// Seconds is the measured window.
	Seconds float64 `json:"seconds"`
	// Messages were delivered (echoes in echo mode) in the window.
	Messages   int64   `json:"messages"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	// Latency is the echo round trip (echo mode) or the delivery
	// latency from the target's send (stream mode).
	Latency Latency `json:"latency"`
	Sent    int64   `json:"sent"`
	Errors  int64   `json:"errors"`
	// ErrorKinds lists the distinct errors seen, most frequent first.
	ErrorKinds []ErrorKind `json:"error_kinds,omitempty"`
	Lost       int64       `json:"lost"`
	Duplicated int64       `json:"duplicated"`
	Reordered  int64       `json:"reordered"`
	// Sessions were created (WebSockets dialed, for direct).
	Sessions int64 `json:"sessions"`
	// CreateRate is sessions per second during the create phase.
	CreateRate    float64 `json:"create_per_sec"`
	CreateLatency Latency `json:"create_latency"`
	// Healthy sessions (idle mode): every poll answered, and a final
	// echo came back.
	Healthy int64 `json:"healthy,omitempty"`
	// Polls answered, and the mean messages each carried (warmup
	// included): how well the relay batches.
	Polls       int64   `json:"polls,omitempty"`
	MsgsPerPoll float64 `json:"msgs_per_poll,omitempty"`
	Heartbeats  int64   `json:"heartbeats,omitempty"`
	// BenchCores is the CPU the bench process (its target included) used
	// during the workload, in cores; RelayCores the relay process's.
	BenchCores float64 `json:"bench_cores"`
	RelayCores float64 `json:"relay_cores,omitempty"`
	// RSS of the relay process (when its pid is known), KiB.
	RSSBeforeKiB     int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB      int64   `json:"rss_after_kib,omitempty"`
	RSSPerSessionKiB float64 `json:"rss_per_session_kib,omitempty"`
}

// Clean reports whether no message was lost, duplicated or reordered.
func (r *Result) Clean() bool { return r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 }

// Report is a run's result.
type Report struct {
	Relay  *Result `json:"relay"`
	Direct *Result `json:"direct,omitempty"`
	// Warnings are conditions that may make the figures wrong, such as
	// a file descriptor limit too low for the concurrency.
	Warnings []string `json:"warnings,omitempty"`
}

func (s *stats) result(path string, cfg Config, createTime time.Duration) *Result {
	win := time.Duration(s.windowEnd - s.windowStart)
	r := &Result{
		Path: path, Mode: cfg.Mode, Concurrency: cfg.Concurrency, Size: cfg.Size,
		Seconds:       win.Seconds(),
		Messages:      s.msgs.Load(),
		Latency:       s.lat.summary(),
		Sent:          s.sent.Load(),
		Errors:        s.errs.Load(),
		ErrorKinds:    s.errorKinds(),
		Lost:          s.lost.Load(),
		Duplicated:    s.dup.Load(),
		Reordered:     s.reordered.Load(),
		Sessions:      s.created.Load(),
		CreateLatency: s.create.summary(),
		Healthy:       s.healthy.Load(),
		Heartbeats:    s.beats.Load(),
		Polls:         s.polls.Load(),
	}
	if r.Polls > 0 {
		r.MsgsPerPoll = float64(s.total.Load()) / float64(r.Polls)
	}
	if win > 0 {
		r.MsgsPerSec = float64(r.Messages) / win.Seconds()
	}
	if createTime > 0 {
		r.CreateRate = float64(r.Sessions) / createTime.Seconds()
	}
	return r
}

// startProgress prints a progress line every second until the
// returned stop is called (it waits for the printer to exit).
func (s *stats) startProgress(ctx context.Context, w io.Writer, label string, sessions func() int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.progress(ctx, w, label, sessions)
	}()
	return func() {
		cancel()
		<-done
	}
}

// progress prints a line every second until ctx ends.
func (s *stats) progress(ctx context.Context, w io.Writer, label string, sessions func() int64) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	start := time.Now()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		total := s.total.Load()
		fmt.Fprintf(w, "%s %3.0fs  %8d msgs/s  sessions %d  delivered %d  errors %d  lost %d  dup %d  reordered %d  heartbeats %d\n",
			label, time.Since(start).Seconds(), total-last, sessions(), total, s.errs.Load(),
			s.lost.Load(), s.dup.Load(), s.reordered.Load(), s.beats.Load())
		last = total
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a table, the baseline beside the relay.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s mode, C=%d, %d B messages\n", r.Relay.Mode, r.Relay.Concurrency, r.Relay.Size)
	t := table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight), cols: []*Result{r.Relay}}
	head := "\trelay\t"
	if r.Direct != nil {
		t.cols = append(t.cols, r.Direct)
		head = "\trelay\tdirect\t"
	}
	fmt.Fprintln(t.tw, head)
	t.row("sessions", func(c *Result) string { return fmtInt(c.Sessions) })
	t.row("create/s", func(c *Result) string { return fmtF1(c.CreateRate) })
	t.row("create p50 ms", func(c *Result) string { return fmtF3(c.CreateLatency.P50) })
	t.row("create p99 ms", func(c *Result) string { return fmtF3(c.CreateLatency.P99) })
	if r.Relay.Mode != ModeIdle {
		t.trafficRows()
	} else {
		t.row("healthy", func(c *Result) string { return fmtInt(c.Healthy) })
		t.row("heartbeats", func(c *Result) string { return fmtInt(c.Heartbeats) })
	}
	t.row("errors", func(c *Result) string { return fmtInt(c.Errors) })
	t.row("lost", func(c *Result) string { return fmtInt(c.Lost) })
	t.row("duplicated", func(c *Result) string { return fmtInt(c.Duplicated) })
	t.row("reordered", func(c *Result) string { return fmtInt(c.Reordered) })
	t.costRows(r.Relay)
	if err := t.tw.Flush(); err != nil {
		return err
	}
	for _, c := range t.cols {
		for _, k := range c.ErrorKinds {
			fmt.Fprintf(w, "%s error ×%d: %s\n", c.Path, k.Count, k.Error)
		}
	}
	for _, wn := range r.Warnings {
		fmt.Fprintln(w, "warning:", wn)
	}
	return nil
}

// table writes WriteTable's rows: one column a result.
type table struct {
	tw   *tabwriter.Writer
	cols []*Result
}

func (t *table) row(name string, f func(*Result) string) {
	fmt.Fprint(t.tw, name+"\t")
	for _, c := range t.cols {
		fmt.Fprint(t.tw, f(c)+"\t")
	}
	fmt.Fprintln(t.tw)
}

// trafficRows are the rows of the modes that move messages.
func (t *table) trafficRows() {
	t.row("seconds", func(c *Result) string { return fmtF1(c.Seconds) })
	t.row("messages", func(c *Result) string { return fmtInt(c.Messages) })
	t.row("msgs/s", func(c *Result) string { return fmtF1(c.MsgsPerSec) })
	t.row("latency p50 ms", func(c *Result) string { return fmtF3(c.Latency.P50) })
	t.row("latency p90 ms", func(c *Result) string { return fmtF3(c.Latency.P90) })
	t.row("latency p99 ms", func(c *Result) string { return fmtF3(c.Latency.P99) })
	t.row("latency max ms", func(c *Result) string { return fmtF3(c.Latency.Max) })
	t.row("msgs/poll", func(c *Result) string {
		if c.Polls == 0 {
			return "-"
		}
		return fmtF1(c.MsgsPerPoll)
	})
}

// costRows are the CPU and memory rows; relay is the relay path's result.
func (t *table) costRows(relay *Result) {
	t.row("bench CPU cores", func(c *Result) string { return strconv.FormatFloat(c.BenchCores, 'f', 2, 64) })
	if relay.RelayCores > 0 {
		t.row("relay CPU cores", func(c *Result) string {
			if c.Path != "relay" {
				return "-"
			}
			return strconv.FormatFloat(c.RelayCores, 'f', 2, 64)
		})
	}
	if relay.RSSAfterKiB == 0 {
		return
	}
	// Only the relay path has a relay process.
	rss := func(f func(*Result) string) func(*Result) string {
		return func(c *Result) string {
			if c.RSSAfterKiB == 0 {
				return "-"
			}
			return f(c)
		}
	}
	t.row("relay RSS before KiB", rss(func(c *Result) string { return fmtInt(c.RSSBeforeKiB) }))
	t.row("relay RSS after KiB", rss(func(c *Result) string { return fmtInt(c.RSSAfterKiB) }))
	t.row("relay RSS/session KiB", rss(func(c *Result) string { return fmtF1(c.RSSPerSessionKiB) }))
}

func fmtF1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func fmtF3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
func fmtInt(v int64) string  { return strconv.FormatInt(v, 10) }
