package bench

import (
	"context"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs every workload briefly against a real stack and checks
// that messages moved and none was lost, duplicated or reordered.
func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		direct bool
	}{
		{name: "echo", cfg: Config{Mode: ModeEcho, Concurrency: 3}, direct: true},
		{name: "stream", cfg: Config{Mode: ModeStream, Concurrency: 3, Rate: 2000}, direct: true},
		{name: "stream-unpaced", cfg: Config{Mode: ModeStream, Concurrency: 2}},
		{name: "idle", cfg: Config{Mode: ModeIdle, Concurrency: 4, PollTTL: 200 * time.Millisecond}},
		// The baseline against another server's echo: the test stack's
		// target, a real coder/websocket echo (set below).
		{name: "echo-direct-target", cfg: Config{Mode: ModeEcho, Concurrency: 2, DirectTarget: "set below"}, direct: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := testenv.NewStack(t, testenv.StackOptions{})
			cfg := tt.cfg
			cfg.Router = st.URL
			cfg.Duration = time.Second
			cfg.Warmup = 100 * time.Millisecond
			cfg.Direct = tt.direct
			cfg.Timeout = 10 * time.Second
			if cfg.DirectTarget != "" {
				cfg.Direct = false // implied
				cfg.DirectTarget = testenv.NewTarget(t, testenv.TargetOptions{}).URL
			}
			b, err := New(cfg, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rep, err := b.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			results := []*Result{rep.Relay}
			if tt.direct {
				if rep.Direct == nil {
					t.Fatal("no direct result")
				}
				results = append(results, rep.Direct)
			}
			for _, r := range results {
				checkResult(t, r, cfg)
			}
		})
	}
}

// A direct target must be a WebSocket URL, and only echo can use it.
func TestDirectTargetChecked(t *testing.T) {
	for _, cfg := range []Config{
		{Mode: ModeEcho, DirectTarget: "http://127.0.0.1:1/echo"},
		{Mode: ModeEcho, DirectTarget: "ws://"},
		{Mode: ModeStream, DirectTarget: "ws://127.0.0.1:1/echo"},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%+v: accepted", cfg)
		}
	}
}

func checkResult(t *testing.T, r *Result, cfg Config) {
	t.Helper()
	if r.Errors != 0 || !r.Clean() {
		t.Errorf("%s: errors %d %v, lost %d, duplicated %d, reordered %d", r.Path, r.Errors, r.ErrorKinds, r.Lost, r.Duplicated, r.Reordered)
	}
	if r.Sessions != int64(cfg.Concurrency) {
		t.Errorf("%s: %d sessions, want %d", r.Path, r.Sessions, cfg.Concurrency)
	}
	if cfg.Mode == ModeIdle {
		if r.Healthy != int64(cfg.Concurrency) || r.Heartbeats == 0 {
			t.Errorf("%s: %d healthy sessions of %d, %d heartbeats", r.Path, r.Healthy, cfg.Concurrency, r.Heartbeats)
		}
		return
	}
	if r.Messages == 0 || r.MsgsPerSec <= 0 || r.Latency.Count != uint64(r.Messages) {
		t.Errorf("%s: %d messages, %.0f msgs/s, %d latencies", r.Path, r.Messages, r.MsgsPerSec, r.Latency.Count)
	}
}

func TestSeqCheck(t *testing.T) {
	var c seqCheck
	for _, s := range []int64{1, 2, 4, 3, 3, 6} {
		c.see(s)
	}
	if c.unique != 5 || c.dup != 1 || c.reordered != 1 || c.gaps() != 1 {
		t.Errorf("unique %d dup %d reordered %d gaps %d; want 5 1 1 1", c.unique, c.dup, c.reordered, c.gaps())
	}
}

func TestPayload(t *testing.T) {
	b := appendPayload(nil, 42, 12345*time.Nanosecond, 64)
	if len(b) != 64 {
		t.Fatalf("len %d", len(b))
	}
	seq, ts, err := parsePayload(string(b))
	if err != nil || seq != 42 || ts != 12345 {
		t.Fatalf("got %d %v %v", seq, ts, err)
	}
}

func TestHistogram(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := got - c.want; d < -c.want/100 || d > c.want/100 {
			t.Errorf("q%.2f = %v, want %v within 1%%", c.q, got, c.want)
		}
	}
	if got := h.summary().Max; got != 1 {
		t.Errorf("max %v ms, want 1", got)
	}
}

// BenchmarkRelayEcho is one lockstep echo (a send and the poll that
// brings the echo back) through an in-process router and relay, for
// profiles of the echo path: go test -bench RelayEcho -benchmem
// -cpuprofile cpu.out ./bench/ (the client's share is in it too).
func BenchmarkRelayEcho(b *testing.B) {
	st := testenv.NewStack(b, testenv.StackOptions{})
	tg := testenv.NewTarget(b, testenv.TargetOptions{})
	cfg := Config{Router: st.URL}.withDefaults()
	pc := newProtoClient(cfg)
	defer pc.close()
	ctx := context.Background()
	s, err := pc.create(ctx, tg.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer s.release()
	msg := appendPayload(nil, 1, 0, 64)
	var (
		rep pollReply
		ack int64
	)
	b.ReportAllocs()
	b.ResetTimer()
	for n := int64(1); n <= int64(b.N); n++ {
		if err := s.send(ctx, n, msg); err != nil {
			b.Fatal(err)
		}
		for got := false; !got; {
			if err := s.poll(ctx, 5*time.Second, ack, &rep); err != nil {
				b.Fatal(err)
			}
			for _, m := range rep.Messages {
				ack = max(ack, m.Seq)
				got = got || m.Type == "text"
			}
		}
	}
	b.StopTimer()
	if err := s.closeSession(ctx); err != nil {
		b.Fatal(err)
	}
}
