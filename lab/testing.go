package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireRoot skips (or, with MOOBI_REQUIRE_ROOT_TESTS=1, fails) unless the
// test runs as root with the needed tools installed.
func RequireRoot(t testing.TB, tools ...string) {
	t.Helper()
	skip := t.Skip
	if os.Getenv("MOOBI_REQUIRE_ROOT_TESTS") == "1" {
		skip = t.Fatal
	}
	if os.Geteuid() != 0 {
		skip("needs root")
	}
	for _, tool := range append([]string{"ip", "dnsmasq", BusyboxPath}, tools...) {
		var err error
		if filepath.IsAbs(tool) {
			_, err = os.Stat(tool)
		} else {
			_, err = exec.LookPath(tool)
		}
		if err != nil {
			skip("needs " + tool + ": " + err.Error())
		}
	}
}

// TestCacheDir is $MOOBI_CACHE or <repo>/.cache/lab.
func TestCacheDir(t testing.TB) string {
	if d := os.Getenv("MOOBI_CACHE"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "lab")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above working directory")
		}
		dir = parent
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// NewForTest brings up a lab that logs to t and is closed when the test
// ends; if the test failed, the site DHCP server's log is shown first.
func NewForTest(t testing.TB, ctx context.Context) *Lab {
	t.Helper()
	return NewForTestWith(t, ctx, Options{})
}

// NewForTestWith is NewForTest with options (Dir and Log are the test's).
func NewForTestWith(t testing.TB, ctx context.Context, opt Options) *Lab {
	t.Helper()
	start := time.Now()
	opt.Dir, opt.Log = t.TempDir(), testWriter{t}
	l, err := New(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab %s up in %v", l.ID(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("site dnsmasq log:\n%s", l.SiteDHCPLog())
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// UndepmoddedModules returns the lab kernel's module tree (fetching the
// kernel when missing), src, and a copy of it in a test folder, tree, as a
// kernel package unpacked with dpkg -x holds it: without modules.dep and
// the other files depmod writes (see CopyModulesUndepmodded).
func UndepmoddedModules(t testing.TB, ctx context.Context) (src, tree string) {
	t.Helper()
	cache := TestCacheDir(t)
	if _, err := Kernel(ctx, cache); err != nil {
		t.Fatal(err)
	}
	src, err := KernelModulesDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	tree = filepath.Join(t.TempDir(), filepath.Base(src))
	if err := CopyModulesUndepmodded(src, tree); err != nil {
		t.Fatal(err)
	}
	return src, tree
}
