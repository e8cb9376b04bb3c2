// Package build makes the node initramfs with u-root's mkuimage: /init is
// the node client (moobi/initrd/cmd/moobi-node), built from this source
// tree with the Go toolchain, and the archive is gzip'd.
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

// Initramfs builds the node initramfs with `go tool mkuimage` (a tool
// dependency in go.mod, which pins its version) from the source tree at src (the
// folder holding go.mod) and writes it, gzip'd, to out. The file appears
// whole or not at all.
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
	part := out + ".part"
	f, err := os.Create(part)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if _, err := io.Copy(zw, in); err != nil {
		f.Close()
		os.Remove(part)
		return fmt.Errorf("compress initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		f.Close()
		os.Remove(part)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return os.Rename(part, out)
}
