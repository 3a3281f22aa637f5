package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// Bounds of the admin commands and of polling what they report.
const (
	commandTimeout = 20 * time.Second      // one admin command (token ...)
	pollEvery      = 50 * time.Millisecond // between checks that ask Redis or run a command
)

// waitFor is testenv.WaitFor polling every pollEvery: most conditions
// here run a command or ask Redis.
func waitFor(t testing.TB, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitEvery(t, deadline, pollEvery, what, cond)
}

// runCmd runs an admin command of the binary to completion and returns
// its standard output.
func runCmd(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, proctest.Build(t), args...)
	cmd.Env = proctest.Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("polysocket %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// addToken stores a token with the real `token add` command, allowing
// loopback targets from any origin.
func addToken(t testing.TB, redisURL, name string, limit int) {
	t.Helper()
	if _, err := runCmd(t, "token", "add", name, "--target", "ws://127.0.0.1:*", "--origin", "*",
		"--limit", strconv.Itoa(limit), "--redis", redisURL); err != nil {
		t.Fatal(err)
	}
}

// tokenConnections is the token's live connection count as
// `token show NAME --json` prints it.
func tokenConnections(t testing.TB, redisURL, name string) (int, error) {
	t.Helper()
	out, err := runCmd(t, "token", "show", name, "--json", "--redis", redisURL)
	if err != nil {
		return 0, err
	}
	var v struct {
		Connections *int `json:"connections"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return 0, fmt.Errorf("token show output %q: %w", out, err)
	}
	if v.Connections == nil {
		return 0, errors.New("token show: no connections field in " + out)
	}
	return *v.Connections, nil
}
