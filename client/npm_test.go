package client

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/polysocket/polysocket/internal/npmci"
)

// TestNpmPackage packs client/ as the npm package and type-checks
// npmtest/user.ts, a small TypeScript user, against what the tarball
// holds, with the TypeScript pinned in npmtest/package-lock.json.
func TestNpmPackage(t *testing.T) {
	npmci.Need(t)
	packDir := t.TempDir()
	out := npmci.Run(t, ".", "pack", "--json", "--pack-destination", packDir, "--loglevel=error")
	var packed []struct {
		Name     string
		Filename string
		Files    []struct{ Path string }
	}
	if err := json.Unmarshal([]byte(out), &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack --json: %v\n%s", err, out)
	}
	var files []string
	for _, f := range packed[0].Files {
		files = append(files, f.Path)
	}
	slices.Sort(files)
	want := []string{"package.json", "polysocket.d.ts", "polysocket.js", "polysocket.mjs"}
	if packed[0].Name != "polysocket" || !slices.Equal(files, want) {
		t.Fatalf("packed %q with %v, want polysocket with %v", packed[0].Name, files, want)
	}

	work := npmci.Install(t, "npmtest")
	untar(t, filepath.Join(packDir, packed[0].Filename), filepath.Join(work, "node_modules", "polysocket"))
	for _, f := range []string{"user.ts", "tsconfig.json"} {
		b, err := os.ReadFile(filepath.Join("npmtest", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tsc := filepath.Join(work, "node_modules", "typescript", "bin", "tsc")
	if out, err := npmci.Command(work, "node", tsc, "--noEmit", "-p", "."); err != nil {
		t.Fatalf("tsc --noEmit: %v\n%s", err, out)
	}
}

// untar extracts an npm tarball (files under package/) into dir.
func untar(t *testing.T, tgz, dir string) {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("more than 100 entries in the tarball")
		}
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(h.Name, "package/")
		if !ok || h.Typeflag != tar.TypeReg || !filepath.IsLocal(name) {
			t.Fatalf("unexpected tarball entry %q", h.Name)
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
