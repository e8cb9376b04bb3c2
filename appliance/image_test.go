package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"moobi/lab"
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
