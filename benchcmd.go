package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/polysocket/polysocket/bench"
	"github.com/urfave/cli/v2"
)

// benchCommand is `polysocket bench`, the load generator (package bench).
func benchCommand() *cli.Command {
	d := bench.DefaultConfig()
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
			&cli.StringFlag{Name: "token", Value: d.Token, Usage: "token sent to /create"},
			&cli.StringFlag{Name: "mode", Value: string(d.Mode), Usage: "echo (lockstep round trips), stream (the target pushes) or idle (parked polls; relay RSS)"},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: d.Concurrency, Usage: "number of sessions"},
			&cli.IntFlag{Name: "size", Value: d.Size, Usage: "message size, bytes"},
			&cli.DurationFlag{Name: "duration", Value: d.Duration, Usage: "measured time"},
			&cli.DurationFlag{Name: "warmup", Usage: "unmeasured time before measuring"},
			&cli.Float64Flag{Name: "rate", Usage: "stream mode: messages per second the target pushes to each session (0: as fast as it can)"},
			&cli.BoolFlag{Name: "direct", Usage: "also run the workload over a plain WebSocket to the same target (the baseline)"},
			&cli.StringFlag{Name: "direct-target", Usage: "echo mode: run the baseline against this WebSocket echo target of another process instead (e.g. ws://127.0.0.1:8080/echo of polysocket both): a round trip between processes"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON instead of a table"},
			&cli.IntFlag{Name: "relay-pid", Usage: "the relay's process id, to report its RSS (Linux)"},
			&cli.BoolFlag{Name: "spawn", Usage: "start \"polysocket both\" as a child on a free port, measure it and stop it (overrides --router and --relay-pid)"},
			&cli.DurationFlag{Name: "ttl", Value: d.PollTTL, Usage: "ttl of every poll"},
			&cli.IntFlag{Name: "create-parallel", Value: d.CreateParallel, Usage: "most /create requests at once"},
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
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--spawn: %w", err)
		}
		child, err := bench.Spawn(c.Context, exe)
		if err != nil {
			return err
		}
		defer child.Stop()
		cfg.Router, cfg.Routers, cfg.RelayPID = child.URL(), nil, child.PID()
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
	reps, err := bench.ReadReports(c.Args().Slice())
	if err != nil {
		return fmt.Errorf("bench chart: %w", err)
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
