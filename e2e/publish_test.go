package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"moobi/images/catalog"
)

// TestImageAddKilled kills the real `moobi image add` at every step of a
// publish (MOOBI_CRASH_POINT makes it SIGKILL itself there, like a power
// cut) and checks the catalog each time: the current version is the old or
// the new one, whole, and `moobi image list` reads it.
func TestImageAddKilled(t *testing.T) {
	bin := moobiBinary(t)
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "ipxe"), 0o755)
	kernel := filepath.Join(dir, "vmlinuz")
	writeFile(t, kernel, "kernel")
	rootfs := filepath.Join(dir, "rootfs.squashfs")
	writeFile(t, rootfs, catalog.SquashfsMagic+strings.Repeat("x", 3<<20))
	cfg := filepath.Join(dir, "hosts.yaml")
	writeFile(t, cfg, fmt.Sprintf("appliance:\n  interface: lo\n  data_dir: %s/data\n  ipxe_dir: %s/ipxe\n", dir, dir))
	add := func(version, crash string) error {
		cmd := exec.Command(bin, "image", "add", "--config", cfg, "--name", "web", "--kernel", kernel, "--rootfs", rootfs, "--version", version, "--keep", "100")
		cmd.Env = append(os.Environ(), "MOOBI_CRASH_POINT="+crash)
		out, err := cmd.CombinedOutput()
		if err != nil && crash == "" {
			t.Fatalf("image add: %v\n%s", err, out)
		}
		return err
	}
	add("v1", "")
	cat, err := catalog.Open(filepath.Join(dir, "data", "images"))
	if err != nil {
		t.Fatal(err)
	}
	for i, point := range catalog.CrashPoints {
		switched := i >= slices.Index(catalog.CrashPoints, "switched")
		version := fmt.Sprintf("crash%d", i)
		err := add(version, point)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("crash point %s: image add ended with %v, want SIGKILL", point, err)
		}
		if _, err := catalog.Open(cat.Root); err != nil { // cleans leftovers
			t.Fatal(err)
		}
		m, err := cat.Current("web")
		if err != nil {
			t.Fatalf("after a crash at %s: no current version: %v", point, err)
		}
		if want := "v1"; !switched && m.Version != want {
			t.Fatalf("after a crash at %s (before the switch): current %s, want %s", point, m.Version, want)
		}
		if switched && m.Version != version {
			t.Fatalf("after a crash at %s (after the switch): current %s, want %s", point, m.Version, version)
		}
		for name, fi := range m.Files {
			p, _ := cat.Path("web", m.Version, name)
			if st, err := os.Stat(p); err != nil || st.Size() != fi.Size {
				t.Fatalf("after a crash at %s: %s of %s: %v", point, name, m.Version, err)
			}
		}
		out, err := exec.Command(bin, "image", "list", "--config", cfg).CombinedOutput()
		if err != nil || !strings.Contains(string(out), m.InfoHash) {
			t.Fatalf("image list after a crash at %s: %v\n%s", point, err, out)
		}
		if leftovers, _ := filepath.Glob(filepath.Join(cat.Root, "web", ".*")); len(leftovers) != 0 {
			t.Fatalf("after a crash at %s: leftovers %v", point, leftovers)
		}
		// Start each round from v1 again.
		if err := cat.SetCurrent("web", "v1"); err != nil {
			t.Fatal(err)
		}
	}
}
