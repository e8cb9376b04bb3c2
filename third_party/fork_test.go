package thirdparty

import (
	"bytes"
	"context"
	"encoding/json"
	"go/format"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A fork: a module release, copied into dir (cut down to the packages
// Moobi builds) with the patches in dir/patches applied.
type fork struct {
	dir, module, version string
}

var forks = []fork{
	{"anacrolix-torrent", "github.com/anacrolix/torrent", "v1.61.0"},
}

// own lists the fork's files that are not upstream's: its notes and its
// patches.
func own(rel string) bool {
	return rel == "MOOBI.md" || strings.HasPrefix(rel, "patches/")
}

// TestForksAreUpstreamPlusPatches rebuilds each fork from the module
// release (Go's module cache, `go mod download`): every Go file gofmt'd
// (Moobi's make vet checks every file's formatting), then the patches
// applied in order with git apply. The fork must hold exactly that: each of
// its files equal to the rebuilt one, every Go file of each package it
// holds, every file a patch touches; and every patch must be listed in
// MOOBI.md. Any other difference fails, with its diff.
func TestForksAreUpstreamPlusPatches(t *testing.T) {
	for _, f := range forks {
		t.Run(f.dir, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			want := rebuild(t, ctx, f)
			compare(t, ctx, f, want)
		})
	}
}

// rebuild returns a folder holding f's release, gofmt'd, with f's patches
// applied.
func rebuild(t *testing.T, ctx context.Context, f fork) string {
	t.Helper()
	up := moduleDir(t, ctx, f.module+"@"+f.version)
	work := filepath.Join(t.TempDir(), "upstream")
	err := filepath.WalkDir(up, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(up, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(rel, ".go") {
			if b, err = format.Source(b); err != nil {
				return err
			}
		}
		dst := filepath.Join(work, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s@%s: %v", f.module, f.version, err)
	}
	patches, _ := filepath.Glob(filepath.Join(f.dir, "patches", "*.patch"))
	if len(patches) == 0 {
		t.Fatalf("no patches in %s/patches", f.dir)
	}
	notes, err := os.ReadFile(filepath.Join(f.dir, "MOOBI.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range patches {
		name := "patches/" + filepath.Base(p)
		if !bytes.Contains(notes, []byte(name)) {
			t.Errorf("%s/MOOBI.md does not list %s", f.dir, name)
		}
		abs, _ := filepath.Abs(p)
		cmd := exec.CommandContext(ctx, "git", "apply", "--whitespace=nowarn", abs)
		cmd.Dir = work
		// Not inside any repository: git apply works as patch(1) does.
		cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(work))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s does not apply to %s@%s plus the patches before it: %v\n%s", p, f.module, f.version, err, out)
		}
		for _, rel := range touched(t, p) {
			if _, err := os.Stat(filepath.Join(f.dir, rel)); err != nil {
				t.Errorf("%s changes %s, which %s does not hold", p, rel, f.dir)
			}
		}
	}
	return work
}

// touched returns the files the patch at path changes.
func touched(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "+++ b/"); ok {
			files = append(files, strings.TrimSpace(rest))
		}
	}
	return files
}

// compare fails the test for each difference between the fork and want,
// the rebuilt release.
func compare(t *testing.T, ctx context.Context, f fork, want string) {
	t.Helper()
	pkgs := map[string]bool{} // folders of the fork holding Go files
	err := filepath.WalkDir(f.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(f.dir, path)
		rel = filepath.ToSlash(rel)
		if own(rel) {
			return nil
		}
		if strings.HasSuffix(rel, ".go") {
			pkgs[filepath.Dir(rel)] = true
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		exp, err := os.ReadFile(filepath.Join(want, rel))
		switch {
		case err != nil:
			t.Errorf("%s/%s is not in %s@%s, nor added by a patch", f.dir, rel, f.module, f.version)
		case !bytes.Equal(got, exp):
			t.Errorf("%s/%s differs from %s@%s plus the patches:\n%s", f.dir, rel, f.module, f.version, diff(ctx, filepath.Join(want, rel), path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range pkgs {
		gos, _ := filepath.Glob(filepath.Join(want, pkg, "*.go"))
		for _, g := range gos {
			name := filepath.Base(g)
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			if _, err := os.Stat(filepath.Join(f.dir, pkg, name)); err != nil {
				t.Errorf("%s/%s is missing: %s@%s has it in a package the fork holds", f.dir, filepath.Join(pkg, name), f.module, f.version)
			}
		}
	}
	if len(pkgs) == 0 {
		t.Errorf("%s holds no Go package", f.dir)
	}
}

// diff returns diff -u's output from a to b, cut to 4 KB.
func diff(ctx context.Context, a, b string) string {
	out, _ := exec.CommandContext(ctx, "diff", "-u", a, b).CombinedOutput()
	if len(out) > 4<<10 {
		out = append(out[:4<<10], "\n[...]"...)
	}
	return string(out)
}

// moduleDir returns the folder of module@version in Go's module cache,
// downloading it first if needed.
func moduleDir(t *testing.T, ctx context.Context, modVersion string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.CommandContext(ctx, goBin, "mod", "download", "-json", modVersion).Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); err != nil || jerr != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %v %s", modVersion, err, jerr, m.Error)
	}
	return m.Dir
}
