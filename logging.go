package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the process's logger from the global flags: console
// output on a terminal, JSON otherwise (or as --log-format says).
func newLogger(c *cli.Context) (*zap.Logger, error) {
	var level zapcore.Level
	if err := level.Set(c.String("log-level")); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	format := c.String("log-format")
	if format == "auto" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "console"
		}
	}
	var cfg zap.Config
	switch format {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	default:
		return nil, fmt.Errorf("--log-format must be auto, console or json, not %q", format)
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.DisableStacktrace = level > zapcore.DebugLevel
	return cfg.Build()
}
