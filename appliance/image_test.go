package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"moobi/lab"
	"moobi/rollout"
)

func TestImageBuildCommand(t *testing.T) {
	cfg := writeInventory(t, "appliance:\n  interface: lo\n  address: 127.0.0.1\n  ipxe_dir: %DIR%/ipxe\n  data_dir: %DIR%/data\n")
	dir := filepath.Dir(cfg)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--config", cfg, "--name", "root"}, 2, "usage: moobi image build"},
		{[]string{"--config", cfg, "root.tar"}, 2, "usage: moobi image build"},
		{[]string{"--config", cfg, "--name", "root", filepath.Join(dir, "missing.tar")}, 1, "missing.tar: no such file"},
		{[]string{"--config", cfg, "--name", "root", "oci:"}, 1, `no path after "oci:"`},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"image", "build"}, tc.args...), &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("image build %q: exit %d, %q; want %d, %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}

	// A folder root: the newest kernel and its modules are taken from it.
	lab.RequireRoot(t, "mksquashfs")
	root := filepath.Join(dir, "root")
	for name, body := range map[string]string{
		"boot/vmlinuz-6.1.0-2-test":                                "MZ old",
		"boot/vmlinuz-6.1.0-10-test":                               "MZ new",
		"lib/modules/6.1.0-10-test/kernel/fs/squashfs/squashfs.ko": "module",
		"lib/modules/6.1.0-10-test/modules.dep":                    "kernel/fs/squashfs/squashfs.ko:\n",
		"etc/hostname":                                             "moobi\n",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"image", "build", "--config", cfg, "--name", "root", root}, &out, &errb); code != 0 {
		t.Fatalf("image build: exit %d\n%s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if lines[0] != "published root version v1 (current)" || !strings.HasPrefix(lines[1], "infohash ") ||
		!strings.Contains(out.String(), "kernel /boot/vmlinuz-6.1.0-10-test (6.1.0-10-test)") ||
		!strings.Contains(out.String(), "squashfs ") || !strings.Contains(errb.String(), "also found kernels 6.1.0-2-test: took the newest, 6.1.0-10-test") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "data/images/root/current/kernel")); err != nil || string(b) != "MZ new" {
		t.Errorf("published kernel %q, %v", b, err)
	}
}

// Publishing reads the rollout state for the versions it must not prune:
// a state file it cannot read stops it (it could prune a pinned version);
// an active rollout's target version is kept like a pin.
func TestPublishOptionsReadRollouts(t *testing.T) {
	cfg := writeInventory(t, "appliance:\n  interface: lo\n  address: 127.0.0.1\n  ipxe_dir: %DIR%/ipxe\n  data_dir: %DIR%/data\n")
	inv, _, err := openCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(inv.Appliance.DataDir, "state", rollout.FileName)
	os.MkdirAll(filepath.Dir(state), 0o700)
	if err := os.WriteFile(state, []byte(`{"rollouts": {"web-1": {"id": "web-1", "image": "web", "version": "v7", "state": "running"}}, "pins": {"n1": {"image": "web", "version": "v3"}, "n2": {"image": "db", "version": "v9"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := publishOptions(inv, "web", "", 2, false)
	if err != nil || !slices.Equal(o.Protect, []string{"v3", "v7"}) {
		t.Errorf("protected %v, %v; want [v3 v7]", o.Protect, err)
	}
	if err := os.WriteFile(state, []byte(`{"rollouts": {`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"image", "add", "--config", cfg, "--name", "web", "--kernel", cfg, "--rootfs", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "the pinned versions are unknown") || !strings.Contains(errb.String(), rollout.FileName) {
		t.Errorf("image add beside a broken state file: exit %d, %q", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(inv.Appliance.DataDir, "images", "web")); err == nil {
		t.Error("image add published beside a broken state file")
	}
}
