package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/polysocket/polysocket/bench"
	"github.com/urfave/cli/v2"
)

// benchCommand is `polysocket bench`, the load generator (package bench).
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load-test a router and relay with echo, stream or idle sessions against a WebSocket target it starts itself",
		Description: "Examples:\n" +
			"   polysocket bench --spawn -c 100 --direct          # echo through a relay it starts, with the WebSocket baseline\n" +
			"   polysocket bench --mode stream -c 100 --rate 100  # against a running `polysocket both --create-rate 0`\n" +
			"   polysocket bench --mode idle -c 1000 --spawn --duration 30s\n" +
			"   polysocket bench --router http://127.0.0.1:8081 --router http://127.0.0.1:8083 -c 100  # a cluster: creates alternate\n" +
			"   polysocket bench chart --out docs/bench-echo.png bench-results/echo-c*.json  # the chart (scripts/bench.sh runs it all)\n\n" +
			"A relay under test needs --create-rate 0 (no per-address limit on /create): every session comes from one address.\n" +
			"Stream latency is queueing in the relay's buffer unless --rate paces the target below what the relay delivers.",
		Flags: append(logFlags(),
			&cli.StringSliceFlag{Name: "router", Usage: "the router's base URL (default http://127.0.0.1:8080); repeatable: sessions are created on each router in turn"},
			&cli.StringFlag{Name: "token", Value: "dev", Usage: "token sent to /create"},
			&cli.StringFlag{Name: "mode", Value: "echo", Usage: "echo (lockstep round trips), stream (the target pushes) or idle (parked polls; relay RSS)"},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: 1, Usage: "number of sessions"},
			&cli.IntFlag{Name: "size", Value: 64, Usage: "message size, bytes"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "measured time"},
			&cli.DurationFlag{Name: "warmup", Usage: "unmeasured time before measuring"},
			&cli.Float64Flag{Name: "rate", Usage: "stream mode: messages per second the target pushes to each session (0: as fast as it can)"},
			&cli.BoolFlag{Name: "direct", Usage: "also run the workload over a plain WebSocket to the same target (the baseline)"},
			&cli.StringFlag{Name: "direct-target", Usage: "echo mode: run the baseline against this WebSocket echo target of another process instead (e.g. ws://127.0.0.1:8080/echo of polysocket both): a round trip between processes"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON instead of a table"},
			&cli.IntFlag{Name: "relay-pid", Usage: "the relay's process id, to report its RSS (Linux)"},
			&cli.BoolFlag{Name: "spawn", Usage: "start \"polysocket both\" as a child on a free port, measure it and stop it (overrides --router and --relay-pid)"},
			&cli.DurationFlag{Name: "ttl", Value: 25 * time.Second, Usage: "ttl of every poll"},
			&cli.IntFlag{Name: "create-parallel", Value: 64, Usage: "most /create requests at once"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write the bench process's CPU profile to this file"},
		),
		Action:      runBench,
		Subcommands: []*cli.Command{benchChartCommand()},
	}
}

func runBench(c *cli.Context) error {
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg := bench.Config{
		Routers:        c.StringSlice("router"),
		Token:          c.String("token"),
		Mode:           bench.Mode(c.String("mode")),
		Concurrency:    c.Int("concurrency"),
		Size:           c.Int("size"),
		Duration:       c.Duration("duration"),
		Warmup:         c.Duration("warmup"),
		Rate:           c.Float64("rate"),
		Direct:         c.Bool("direct"),
		DirectTarget:   c.String("direct-target"),
		RelayPID:       c.Int("relay-pid"),
		PollTTL:        c.Duration("ttl"),
		CreateParallel: c.Int("create-parallel"),
		Progress:       os.Stderr,
	}
	if c.Bool("spawn") {
		child, err := spawnBoth(c.Context)
		if err != nil {
			return err
		}
		defer child.stop()
		cfg.Router, cfg.Routers, cfg.RelayPID = child.url, nil, child.cmd.Process.Pid
	}
	b, err := bench.New(cfg, log.Named("bench"))
	if err != nil {
		return err
	}
	if path := c.String("cpuprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := b.Run(c.Context)
	if rep == nil {
		return err
	}
	if c.Bool("json") {
		if werr := rep.WriteJSON(os.Stdout); werr != nil {
			return werr
		}
	} else if werr := rep.WriteTable(os.Stdout); werr != nil {
		return werr
	}
	return err
}

// child is a `polysocket both` started by --spawn.
type child struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
}

// spawnBoth starts this binary as `both` on a free loopback port and
// waits until it answers /healthz.
func spawnBoth(ctx context.Context) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("--spawn: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("--spawn: finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(exe, "both", "--listen", addr, "--log-level", "warn", "--drain-timeout", "1s", "--echo=false", "--create-rate", "0", "--admin-listen", "off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("--spawn: %w", err)
	}
	ch := &child{cmd: cmd, url: "http://" + addr, exited: make(chan struct{})}
	go func() {
		defer close(ch.exited)
		_ = cmd.Wait()
	}()
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		resp, err := hc.Get(ch.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ch, nil
			}
		}
		select {
		case <-ch.exited:
			return nil, errors.New("--spawn: polysocket both exited at start")
		case <-ctx.Done():
			ch.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	ch.stop()
	return nil, errors.New("--spawn: polysocket both did not answer /healthz within 10s")
}

// stop sends SIGTERM to the child (by its pid) and kills it if it has
// not exited after 15s.
func (ch *child) stop() {
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.exited:
	case <-time.After(15 * time.Second):
		_ = ch.cmd.Process.Kill()
		<-ch.exited
	}
}

// benchChartCommand is `polysocket bench chart`: the figure of
// docs/BENCHMARKS.md from saved `bench --json` echo results.
func benchChartCommand() *cli.Command {
	return &cli.Command{
		Name:      "chart",
		Usage:     "draw msgs/s and RTT p99 against concurrency from `bench --json` echo results as a PNG",
		ArgsUsage: "RESULT.json...",
		Description: "Each file is one `polysocket bench --mode echo --direct --json` run, one per concurrency;\n" +
			"results of other modes are skipped, so a whole results folder may be given.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: "docs/bench-echo.png", Usage: "the PNG file to write"},
			&cli.StringFlag{Name: "title", Usage: "the chart's title (default: names the message size)"},
		},
		Action: runBenchChart,
	}
}

func runBenchChart(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("bench chart: give the JSON result files")
	}
	var reps []*bench.Report
	for _, path := range c.Args().Slice() {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("bench chart: %w", err)
		}
		var r bench.Report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("bench chart: %s: %w", path, err)
		}
		reps = append(reps, &r)
	}
	var buf bytes.Buffer
	if err := bench.WriteChart(&buf, reps, c.String("title")); err != nil {
		return err
	}
	// Rendered before the file is opened: bad input leaves the old chart.
	if err := os.WriteFile(c.String("out"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("bench chart: %w", err)
	}
	return nil
}
