package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// NodeInitrd returns the node initramfs built by `BIN initrd build` from
// the source tree src, cached in cacheDir under a hash of the sources it is
// built from. built reports whether it had to be built.
func NodeInitrd(ctx context.Context, cacheDir, bin, src string) (path string, built bool, err error) {
	sum, err := sourceHash(src, "go.mod", "go.sum", "initrd", "images", "nodeapi")
	if err != nil {
		return "", false, err
	}
	dir := filepath.Join(cacheDir, "initrd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	path = filepath.Join(dir, "node-initrd-"+sum[:16]+".cpio.gz")
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	}
	if out, err := exec.CommandContext(ctx, bin, "initrd", "build", "--out", path, "--src", src).CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("moobi initrd build: %v\n%s", err, out)
	}
	return path, true, nil
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
