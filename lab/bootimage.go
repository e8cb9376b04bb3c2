package lab

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"moobi/bootsign"
)

// ImageInit is the demo and test image's /sbin/init: it greets with the
// hostname the node client wrote into the image, then idles so that the
// node keeps seeding.
const ImageInit = `#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "MOOBI-IMAGE: hello from $(/bin/busybox cat /etc/hostname)" > /dev/console
while true; do /bin/busybox sleep 3600; done
`

// ImageMarker is what ImageInit prints, followed by the hostname.
const ImageMarker = "MOOBI-IMAGE: hello from "

// BuildBootImage writes to out a real squashfs root filesystem: static
// busybox, ImageInit as /sbin/init, and payloadMiB of random data (stored
// uncompressed, so the image has about that size).
func BuildBootImage(out string, payloadMiB int) error {
	root, err := os.MkdirTemp(filepath.Dir(out), "image-root-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "run", "tmp", "var"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	os.Symlink("busybox", filepath.Join(root, "bin", "sh"))
	if err := os.WriteFile(filepath.Join(root, "sbin", "init"), []byte(ImageInit), 0o755); err != nil {
		return err
	}
	if payloadMiB > 0 {
		if b, err := exec.Command("dd", "if=/dev/urandom", "of="+filepath.Join(root, "payload.bin"), "bs=1M", fmt.Sprint("count=", payloadMiB)).CombinedOutput(); err != nil {
			return fmt.Errorf("dd: %v: %s", err, b)
		}
	}
	if b, err := exec.Command("mksquashfs", root, out, "-noappend", "-all-root", "-quiet", "-noD").CombinedOutput(); err != nil {
		return fmt.Errorf("mksquashfs: %v: %s", err, b)
	}
	return nil
}

// SigningKey is the boot signing key shared by the tests and the demo:
// cacheDir/boot-signing.key, created on first use. Appliances sign with it
// (appliance.signing_key) and NodeInitrd builds initramfs that trust it.
func SigningKey(cacheDir string) (string, error) {
	path := filepath.Join(cacheDir, "boot-signing.key")
	if _, _, err := bootsign.LoadOrCreate(path); err != nil {
		return "", err
	}
	return path, nil
}

// NodeInitrd returns a node initramfs that trusts the boot signing key in
// keyFile (a private or public key file). Its base, built by `BIN initrd
// build --base-only` from the source tree src (slow), is cached in cacheDir
// under a hash of the sources it is built from; the key is appended per key
// (`--base --key`, cheap). built reports whether the base had to be built.
// Concurrent calls, from different processes too, are safe.
func NodeInitrd(ctx context.Context, cacheDir, bin, src, keyFile string) (path string, built bool, err error) {
	pub, err := bootsign.LoadPublicKey(keyFile)
	if err != nil {
		return "", false, err
	}
	base, built, err := NodeInitrdBase(ctx, cacheDir, bin, src)
	if err != nil {
		return "", false, err
	}
	path = strings.Replace(base, "node-initrd-base-", "node-initrd-", 1)
	path = strings.TrimSuffix(path, ".cpio.gz") + "-key-" + bootsign.KeyID(pub) + ".cpio.gz"
	unlock, err := lockFile(ctx, filepath.Join(filepath.Dir(base), ".lock"))
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path, built, nil
	}
	if out, err := exec.CommandContext(ctx, bin, "initrd", "build", "--base", base, "--key", keyFile, "--out", path).CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("moobi initrd build --key: %v\n%s", err, out)
	}
	return path, built, nil
}

// NodeInitrdBase returns the node initramfs without a key (`BIN initrd
// build --base-only` of the source tree src, slow), cached in cacheDir
// under a hash of the sources it is built from. built reports whether it
// had to be built. Concurrent calls, from different processes too, are safe.
func NodeInitrdBase(ctx context.Context, cacheDir, bin, src string) (base string, built bool, err error) {
	// third_party: the node client links the BitTorrent library's fork
	// (go.mod's replace); a change to it must rebuild the initramfs too.
	sum, err := sourceHash(src, "go.mod", "go.sum", "initrd", "images", "nodeapi", "bootsign", "third_party")
	if err != nil {
		return "", false, err
	}
	dir := filepath.Join(cacheDir, "initrd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return "", false, err
	}
	defer unlock()
	base = filepath.Join(dir, "node-initrd-base-"+sum[:16]+".cpio.gz")
	if _, err := os.Stat(base); err != nil {
		if out, err := exec.CommandContext(ctx, bin, "initrd", "build", "--base-only", "--out", base, "--src", src).CombinedOutput(); err != nil {
			return "", false, fmt.Errorf("moobi initrd build --base-only: %v\n%s", err, out)
		}
		built = true
	}
	return base, built, nil
}

// sourceHash hashes the Go sources and module files under the given paths
// of the tree at root.
func sourceHash(root string, paths ...string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		err := filepath.WalkDir(filepath.Join(root, p), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".go") || strings.HasPrefix(d.Name(), "go.")) {
				return err
			}
			b, err := os.ReadFile(path)
			fmt.Fprintf(h, "%s %d\n", strings.TrimPrefix(path, root), len(b))
			h.Write(b)
			return err
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RandomSquashfs writes dir/rootfs.squashfs: a squashfs holding sizeMiB of
// random data and an /etc/os-release, stored uncompressed so that the
// image is about that size. It is an image to distribute, not to boot.
func RandomSquashfs(ctx context.Context, dir string, sizeMiB int) (string, error) {
	src := filepath.Join(dir, "rootfs-src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	f, err := os.Create(filepath.Join(src, "payload.bin"))
	if err != nil {
		return "", err
	}
	_, err = io.CopyN(f, rand.Reader, int64(sizeMiB)<<20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("random payload: %w", err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "os-release"), []byte("NAME=moobi-test\n"), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "rootfs.squashfs")
	if b, err := exec.CommandContext(ctx, "mksquashfs", src, out, "-noappend", "-noI", "-noD", "-noF", "-noX", "-quiet").CombinedOutput(); err != nil {
		return "", fmt.Errorf("mksquashfs: %v\n%s", err, b)
	}
	return out, nil
}
