package node

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"moobi/nodeapi"
	"moobi/overlay"
)

func TestStateArea(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "disk")
	const size = 8 << 20
	if err := os.WriteFile(dev, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadState(dev, size); err != ErrNoState {
		t.Fatalf("empty device: %v, want ErrNoState", err)
	}
	for i, host := range []string{"a", "b", "c"} {
		if err := WriteState(dev, size, State{Host: host, MAC: "m", HostKeys: map[string]string{"k": host}}); err != nil {
			t.Fatal(err)
		}
		st, err := ReadState(dev, size)
		if err != nil || st.Host != host || st.seq != uint64(i+1) {
			t.Fatalf("after writing %s: %+v, %v", host, st, err)
		}
	}
	// Damage the newest slot (seq 3, slot 1): the older one is read.
	f, _ := os.OpenFile(dev, os.O_WRONLY, 0)
	f.WriteAt([]byte("garbage"), size-StateAreaSize+stateSlotSize+int64(stateHeader)+2)
	f.Close()
	st, err := ReadState(dev, size)
	if err != nil || st.Host != "b" {
		t.Fatalf("with the newest slot damaged: %+v, %v; want host b", st, err)
	}
	// The image's bytes before the state area are never touched.
	b, _ := os.ReadFile(dev)
	for i, c := range b[:size-StateAreaSize] {
		if c != 0 {
			t.Fatalf("byte %d of the image area changed", i)
		}
	}
	if _, err := ReadState(dev, StateAreaSize); err == nil {
		t.Fatal("a device too small for a state area was read")
	}
}

func TestApplyIdentity(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := nodeapi.BootConfig{Name: "n1", MAC: "52:54:00:00:00:01"}
	ov, _, err := overlay.Render(overlay.Spec{Node: overlay.Node{Name: "n1", MAC: cfg.MAC, MachineID: overlay.MachineID("n1")}})
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(t.TempDir(), "disk")
	const size = 4 << 20
	os.WriteFile(dev, make([]byte, size), 0o600)
	image := func() string {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755)
		// Keys baked into the image: every node would share them.
		for _, f := range []string{"ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"} {
			os.WriteFile(filepath.Join(root, "etc/ssh", f), []byte("baked"), 0o600)
		}
		return root
	}
	pub := func(root string) string {
		b, err := os.ReadFile(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key.pub"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	r1 := image()
	res, err := applyIdentity(log, r1, cfg, ov, "eth0", dev, size)
	if err != nil || res.KeysKept || res.StateErr != nil || res.Entries == 0 {
		t.Fatalf("first boot: %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(r1, "etc/ssh/ssh_host_rsa_key")); err == nil {
		t.Error("the image's RSA host key was left in place")
	}
	if b, _ := os.ReadFile(filepath.Join(r1, LinkFile)); !strings.Contains(string(b), "MACAddress=52:54:00:00:00:01\n") || !strings.Contains(string(b), "Name=eth0\n") {
		t.Errorf("link file:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(r1, "etc/hostname")); string(b) != "n1\n" {
		t.Errorf("hostname %q", b)
	}
	if !strings.HasPrefix(pub(r1), "ssh-ed25519 ") || !strings.HasSuffix(pub(r1), " root@n1\n") {
		t.Errorf("public key %q", pub(r1))
	}
	// Second boot with the same cache device: the same keys.
	r2 := image()
	res, err = applyIdentity(log, r2, cfg, ov, "eth0", dev, size)
	if err != nil || !res.KeysKept || pub(r2) != pub(r1) {
		t.Fatalf("second boot: %+v, %v; keys kept %v", res, err, pub(r2) == pub(r1))
	}
	// Another host with this disk, and a RAM node: fresh keys.
	r3 := image()
	if res, err = applyIdentity(log, r3, nodeapi.BootConfig{Name: "n2", MAC: "52:54:00:00:00:02"}, ov, "eth0", dev, size); err != nil || res.KeysKept || pub(r3) == pub(r1) {
		t.Fatalf("another host: %+v, %v", res, err)
	}
	r4 := image()
	if res, err = applyIdentity(log, r4, cfg, ov, "", "", 0); err != nil || res.KeysKept || pub(r4) == pub(r1) {
		t.Fatalf("RAM node: %+v, %v", res, err)
	}
}

func TestIsSystemd(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755)
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), nil, 0o755)
	os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init"))
	os.Symlink("usr/lib", filepath.Join(root, "lib"))
	os.WriteFile(filepath.Join(root, "sbin/busybox-init"), nil, 0o755)
	os.Symlink("../usr/lib/systemd/systemd", filepath.Join(root, "sbin/relative"))
	os.Symlink("/nowhere/systemd", filepath.Join(root, "sbin/dangling"))
	for init, want := range map[string]bool{"/sbin/init": true, "/sbin/relative": true, "/sbin/busybox-init": false, "/sbin/dangling": false, "/missing": false} {
		if got := isSystemd(root, init); got != want {
			t.Errorf("isSystemd(%s) = %v, want %v", init, got, want)
		}
	}
}
