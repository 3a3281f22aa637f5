// Command polysocket runs polysocket's router, relay, or both in one
// process, and administers tokens. See README.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/polysocket/polysocket/process"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := process.SignalContext(context.Background())
	err := newApp().RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "polysocket:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "polysocket",
		Usage:   "a WebSocket fallback over plain HTTP (JSONP and POST) for browsers that cannot use WebSocket",
		Version: version,
		Flags:   logFlags(),
		Commands: []*cli.Command{
			bothCommand(),
			routerCommand(),
			relayCommand(),
			tokenCommand(),
			benchCommand(),
		},
	}
}

// logFlags are accepted before and after the subcommand.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: env("LOG_LEVEL")},
		&cli.StringFlag{Name: "log-format", Value: "auto", Usage: "auto (console on a terminal, JSON otherwise), console or json", EnvVars: env("LOG_FORMAT")},
	}
}

// env names the environment variable of a flag: POLYSOCKET_NAME.
func env(name string) []string { return []string{"POLYSOCKET_" + name} }
