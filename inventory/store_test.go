package inventory

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustMAC(t *testing.T, s string) []byte {
	mac, err := ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeAtomic saves like an editor: write a temporary file, rename it over.
func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".hosts.yaml.swp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloadRefusesBadEdit(t *testing.T) {
	path := fixture(t, good)
	dir := filepath.Dir(path)
	s, err := Open(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	before := s.Current()
	bad := strings.ReplaceAll(strings.Replace(good, "profile: rescue\n  rack1-node02", "profile: nosuch\n  rack1-node02", 1), "%DIR%", dir)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := s.Reload()
	if err == nil || changed {
		t.Fatalf("Reload of a bad edit: changed=%v err=%v", changed, err)
	}
	if !strings.Contains(err.Error(), `profile "nosuch" does not exist`) {
		t.Fatalf("error %q does not say what is wrong", err)
	}
	if s.Current() != before {
		t.Fatal("a bad edit replaced the inventory in force")
	}
	if _, _, ok := s.Current().Lookup(mustMAC(t, "52:54:00:12:34:01")); !ok {
		t.Fatal("the old inventory no longer boots rack1-node01")
	}
}

// watch opens the inventory at path and watches it until the test ends;
// hup is its SIGHUP channel.
func watch(t *testing.T, path string) (*Store, chan<- os.Signal) {
	t.Helper()
	s, err := Open(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, hup) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, hup
}

// TestWatch edits the file the way editors do and sends SIGHUP, and checks
// that good edits take effect while a bad one is refused.
func TestWatch(t *testing.T) {
	path := fixture(t, good)
	dir := filepath.Dir(path)
	s, _ := watch(t, path)
	node3 := mustMAC(t, "52:54:00:12:34:03")
	withNode3 := strings.ReplaceAll(good, "%DIR%", dir) + "  rack1-node03:\n    mac: 52:54:00:12:34:03\n    profile: rescue\n"

	// A broken edit first: refused, the old inventory keeps serving.
	writeAtomic(t, path, withNode3+"  broken: [\n")
	// Then a good one, which must win.
	writeAtomic(t, path, withNode3)
	waitFor(t, "the good edit to take effect", func() bool { _, _, ok := s.Current().Lookup(node3); return ok })

	if _, _, ok := s.Current().Lookup(mustMAC(t, "52:54:00:12:34:01")); !ok {
		t.Fatal("rack1-node01 lost after the reload")
	}
}

// TestReloadOnSIGHUP uses a config reached through a symlink into another
// folder, whose edits the folder watch cannot see: only the signal reloads.
func TestReloadOnSIGHUP(t *testing.T) {
	abs := strings.Replace(good, "[rescue.cpio.gz]", "[%DIR%/rescue.cpio.gz]", 1)
	real := fixture(t, abs)
	dir := filepath.Dir(real)
	link := filepath.Join(t.TempDir(), "hosts.yaml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s, hup := watch(t, link)
	node3 := mustMAC(t, "52:54:00:12:34:03")
	if err := os.WriteFile(real, []byte(strings.ReplaceAll(abs, "%DIR%", dir)+"  rack1-node03:\n    mac: 52:54:00:12:34:03\n    profile: rescue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	waitFor(t, "the SIGHUP reload", func() bool { _, _, ok := s.Current().Lookup(node3); return ok })
}
