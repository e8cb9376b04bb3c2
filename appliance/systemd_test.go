package main

// dist/moobi.service checked by systemd itself: `systemd-analyze verify`
// (what systemd would say when loading it) and `systemd-analyze security
// --offline` (its exposure score), in a scratch root holding the unit, the
// commands it runs and the system's units, so that neither the host's
// /usr/local/bin nor a running systemd is needed.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireTool skips when a command is missing, or fails under
// MOOBI_REQUIRE_ROOT_TESTS=1 (CI, which installs it).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("MOOBI_REQUIRE_ROOT_TESTS") == "1" {
			t.Fatalf("needs %s: %v", name, err)
		}
		t.Skipf("needs %s: %v", name, err)
	}
	return p
}

// unitRoot lays out a root for `systemd-analyze --root`: the system's
// units (sysinit.target and the rest that a service pulls in), the unit
// under test in /etc/systemd/system, and an executable at every absolute
// path its Exec*= lines name (verify checks that each exists and is
// executable; what they do does not matter to it).
func unitRoot(t *testing.T, unit string) string {
	t.Helper()
	root := t.TempDir()
	mkdir := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("usr/lib/systemd")
	mkdir("etc/systemd/system")
	for _, l := range []string{"bin", "sbin", "lib"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copy the system's units: %v\n%s", err, out)
	}
	for _, exe := range unitCommands(unit) {
		p := filepath.Join(root, exe)
		if strings.HasPrefix(exe, "/bin/") || strings.HasPrefix(exe, "/sbin/") {
			p = filepath.Join(root, "usr", exe)
		}
		mkdir(filepath.Dir(strings.TrimPrefix(p, root)))
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/systemd/system/moobi.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// unitCommands lists the absolute paths of the programs a unit's Exec*=
// settings run.
func unitCommands(unit string) []string {
	var out []string
	for k, vals := range parseUnit(unit)["Service"] {
		if !strings.HasPrefix(k, "Exec") {
			continue
		}
		for _, v := range vals {
			f := strings.Fields(strings.TrimLeft(v, "-@:+!"))
			if len(f) > 0 && filepath.IsAbs(f[0]) {
				out = append(out, f[0])
			}
		}
	}
	return out
}

// analyze runs systemd-analyze with --root and returns its exit error and
// everything it printed on stderr (warnings such as an unknown key leave
// the exit status at 0).
func analyze(t *testing.T, root string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemd-analyze", append([]string{"--root=" + root}, args...)...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestSystemdAnalyze(t *testing.T) {
	requireTool(t, "systemd-analyze")
	unit := readRepoFile(t, "dist/moobi.service")

	t.Run("verify", func(t *testing.T) {
		_, stderr, err := analyze(t, unitRoot(t, unit), "verify", "moobi.service")
		if err != nil || strings.TrimSpace(stderr) != "" {
			t.Errorf("systemd-analyze verify dist/moobi.service: %v\n%s", err, stderr)
		}
	})
	// The check above must be able to fail: a misspelt key is only a
	// warning to systemd, and must still fail the test.
	t.Run("verify reports a misspelt key", func(t *testing.T) {
		bad := strings.Replace(unit, "\nRestart=", "\nRestrat=", 1)
		if bad == unit {
			t.Fatal("dist/moobi.service has no Restart= line to misspell")
		}
		_, stderr, _ := analyze(t, unitRoot(t, bad), "verify", "moobi.service")
		if !strings.Contains(stderr, "Restrat") {
			t.Errorf("systemd-analyze verify said nothing of Restrat=: %q", stderr)
		}
	})
	// Exposure on systemd's 0-10 scale (10: no sandboxing); the unit scores
	// 1.6: everything but an IP address allow list (nodes are anywhere on
	// the boot VLAN) and a group-readable UMask. --threshold counts tenths.
	t.Run("security", func(t *testing.T) {
		stdout, stderr, err := analyze(t, unitRoot(t, unit), "security", "--offline=yes", "--threshold=20", "moobi.service")
		if err != nil {
			t.Errorf("systemd-analyze security: exposure above 2.0 or an error: %v\n%s\n%s", err, lastLines(stdout, 3), stderr)
		}
		t.Log(strings.TrimSpace(lastLines(stdout, 1)))
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
