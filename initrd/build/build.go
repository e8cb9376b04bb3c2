// Package build makes the node initramfs with u-root's mkuimage: /init is
// the node client (moobi/initrd/cmd/moobi-node), built from this source
// tree with the Go toolchain, and the archive is gzip'd.
//
// The appliance's boot signing public key goes into a second, tiny gzip'd
// cpio archive appended to that base (KeyArchive, WithKey): the kernel
// unpacks concatenated archives in order, later files winning, so one base
// (slow to build) serves any number of keys (cheap to add).
package build

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Initramfs builds the base node initramfs — without a key: a node booted
// with it alone refuses to boot — with `go tool mkuimage` (a tool
// dependency in go.mod, which pins its version) from the source tree at src
// (the folder holding go.mod) and writes it, gzip'd, to out. The file
// appears whole or not at all.
func Initramfs(ctx context.Context, src, out string, log io.Writer) error {
	tmp, err := os.MkdirTemp("", "moobi-initrd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cpio := filepath.Join(tmp, "node.cpio")
	cmd := exec.CommandContext(ctx, "go", "tool", "mkuimage", "-build=binary", "-o", cpio,
		"-initcmd=moobi-node", "-defaultsh=", "./initrd/cmd/moobi-node")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-ldflags=-s -ldflags=-w")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mkuimage in %s: %w", src, err)
	}
	in, err := os.Open(cpio)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeAtomic(out, func(w io.Writer) error {
		zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
		if _, err := io.Copy(zw, in); err != nil {
			return fmt.Errorf("compress initramfs: %w", err)
		}
		return zw.Close()
	})
}
