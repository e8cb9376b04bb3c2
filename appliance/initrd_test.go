package main

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"moobi/bootsign"
	"moobi/initrd/build"
)

// fakeBase writes a stand-in for mkuimage's base initramfs (any gzip'd
// data will do for WithKey) and returns its path.
func fakeBase(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte("base archive"))
	zw.Close()
	path := filepath.Join(t.TempDir(), "base.cpio.gz")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInitrdBuildFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build"}, "give exactly one of --out and --config"},
		{[]string{"build", "--out", "x", "--config", "y"}, "give exactly one of --out and --config"},
		{[]string{"build", "--out", "x"}, "--out needs --key FILE"},
		{[]string{"build", "--config", "y", "--key", "k"}, "--config uses appliance.signing_key"},
		{[]string{"build", "--out", "x", "--base-only", "--key", "k"}, "--base-only builds a base without a key"},
		{[]string{"build", "--out", "x", "--key", "k", "extra"}, `unexpected argument "extra"`},
		{[]string{"frob"}, "usage: moobi initrd build"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"initrd"}, tc.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("initrd %v: exit %d, %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// TestInitrdBuildKey: with a prebuilt base, --out --key appends the key
// member to it; --config uses (and creates) appliance.signing_key and
// writes appliance.node_initrd; a bad key file is named in the error.
func TestInitrdBuildKey(t *testing.T) {
	base := fakeBase(t)
	baseBytes, _ := os.ReadFile(base)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k.key")
	key, _, err := bootsign.LoadOrCreate(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	want, _ := build.KeyArchive(pub)
	for _, kf := range []string{keyFile, bootsign.PublicKeyFile(keyFile)} {
		out := filepath.Join(dir, "initrd.cpio.gz")
		var stdout, stderr bytes.Buffer
		if code := run([]string{"initrd", "build", "--out", out, "--key", kf, "--base", base}, &stdout, &stderr); code != 0 {
			t.Fatalf("--key %s: exit %d: %s", kf, code, stderr.String())
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, append(append([]byte{}, baseBytes...), want...)) {
			t.Fatalf("--key %s: the initramfs is not the base followed by the key member", kf)
		}
		if !strings.Contains(stdout.String(), "trusting boot signing key ID "+bootsign.KeyID(pub)) {
			t.Errorf("output %q lacks the key ID", stdout.String())
		}
	}

	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"initrd", "build", "--out", filepath.Join(dir, "x"), "--key", bad, "--base", base}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), bad) {
		t.Fatalf("bad key: exit %d, %q", code, stderr.String())
	}

	cfg := writeInventory(t, strings.Replace(inv, "  ipxe_dir:", "  data_dir: %DIR%/data\n  ipxe_dir:", 1))
	data := filepath.Join(filepath.Dir(cfg), "data")
	for i := 0; i < 2; i++ { // creates the key, then reuses it
		stdout.Reset()
		stderr.Reset()
		if code := run([]string{"initrd", "build", "--config", cfg, "--base", base}, &stdout, &stderr); code != 0 {
			t.Fatalf("--config: exit %d: %s", code, stderr.String())
		}
		if created := strings.Contains(stdout.String(), "created the boot signing key "+filepath.Join(data, "state", "boot-signing.key")); created != (i == 0) {
			t.Fatalf("run %d: output %q", i, stdout.String())
		}
	}
	key, err = bootsign.LoadPrivateKey(filepath.Join(data, "state", "boot-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ = build.KeyArchive(key.Public().(ed25519.PublicKey))
	got, _ := os.ReadFile(filepath.Join(data, "node-initrd.cpio.gz"))
	if !bytes.HasSuffix(got, want) || !bytes.HasPrefix(got, baseBytes) {
		t.Fatal("appliance.node_initrd does not carry appliance.signing_key's public key")
	}
}

func TestNodeFetchPubkey(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.pub")
	os.WriteFile(bad, []byte("AAAA"), 0o644)
	var stdout, stderr bytes.Buffer
	code := run([]string{"node", "fetch", "--server", "http://127.0.0.1:1", "--mac", "52:54:00:12:34:01", "--dir", t.TempDir(), "--pubkey", bad}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--pubkey: public key "+bad+": base64 key of 3 bytes") {
		t.Fatalf("exit %d, %q", code, stderr.String())
	}
}
