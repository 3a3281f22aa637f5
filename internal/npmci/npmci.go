// Package npmci installs a test's pinned npm packages: `npm ci` against
// the package.json and package-lock.json in a folder of the test, into a
// temporary directory, from the npm registry (npm's own cache makes
// repeated runs fast). Nothing is vendored by hand.
//
// Tests are skipped, saying so, only when npm is not installed;
// scripts/test.sh installs it. Any other failure fails the test.
package npmci

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// timeout bounds one npm command: a cold cache downloads the packages.
const timeout = 5 * time.Minute

// Need skips t when npm is missing and returns its path.
func Need(t testing.TB) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("skipped: npm is not installed (scripts/test.sh installs it: apt-get install npm)")
	}
	return npm
}

// Install copies package.json and package-lock.json from dir into a new
// temporary directory, runs npm ci there and returns that directory,
// whose node_modules holds the packages.
func Install(t testing.TB, dir string) string {
	t.Helper()
	Need(t)
	work := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("npmci: %v", err)
		}
		if err := os.WriteFile(filepath.Join(work, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Run(t, work, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	return work
}

// Run runs npm with args in dir, bounded by a timeout, and returns its
// output; a failure fails t with that output.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Command(dir, "npm", args...)
	if err != nil {
		t.Fatalf("npm %v in %s: %v\n%s", args, dir, err, out)
	}
	return out
}

// Command runs name with args in dir, bounded by a timeout (the process
// is killed when it runs out), and returns its combined output.
func Command(dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (after %v)", ctx.Err(), timeout)
	}
	return string(out), err
}
