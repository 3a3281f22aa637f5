package main

import (
	"strings"
	"testing"

	"github.com/polysocket/polysocket/token"
	"github.com/urfave/cli/v2"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runFlags parses args (flags only) with flags and runs action on the
// result, as a subcommand would.
func runFlags(t *testing.T, flags []cli.Flag, args []string, action func(*cli.Context) error) {
	t.Helper()
	app := &cli.App{Name: "polysocket", Flags: flags, Action: action}
	if err := app.Run(append([]string{"polysocket"}, args...)); err != nil {
		t.Fatal(err)
	}
}

// TestOpenTokenWarning checks that --token without --token-origin or
// --token-limit logs one warning at start naming what is missing, and
// that a token with both logs none.
func TestOpenTokenWarning(t *testing.T) {
	base := []string{"--token", "app", "--token-target", "wss://api.example.com/live"}
	for _, tc := range []struct {
		name  string
		extra []string
		want  []string // substrings of the one warning; nil: no warning
	}{
		{"neither", nil, []string{"--token-origin", "--token-limit", "public"}},
		{"no origin", []string{"--token-limit", "100"}, []string{"--token-origin"}},
		{"no limit", []string{"--token-origin", "https://app.example.com"}, []string{"--token-limit"}},
		{"both", []string{"--token-origin", "https://app.example.com", "--token-limit", "100"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			runFlags(t, tokenFlags(), append(append([]string(nil), base...), tc.extra...), func(c *cli.Context) error {
				_, err := staticTokens(c, zap.New(core), token.Dev())
				return err
			})
			all := logs.All()
			if tc.want == nil {
				if len(all) != 0 {
					t.Fatalf("warned %q, want no warning", all[0].Message)
				}
				return
			}
			if len(all) != 1 {
				t.Fatalf("%d warnings, want 1", len(all))
			}
			for _, w := range tc.want {
				if !strings.Contains(all[0].Message, w) {
					t.Errorf("warning %q does not mention %q", all[0].Message, w)
				}
			}
			if tc.name == "no origin" && strings.Contains(all[0].Message, "--token-limit") {
				t.Errorf("warning %q names --token-limit, which was given", all[0].Message)
			}
		})
	}
}
