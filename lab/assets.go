package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// KernelMetaPackage is the Debian meta package whose dependency is the
// kernel fetched by Kernel.
const KernelMetaPackage = "linux-image-cloud-amd64"

var kernelPkgRE = regexp.MustCompile(`^linux-image-(\S+-cloud-amd64)$`)

// Kernel returns cacheDir/vmlinuz, a Debian cloud kernel, fetching it first
// if it is missing: the linux-image-<ver>-cloud-amd64 package that
// KernelMetaPackage depends on (per `apt-cache depends`) is fetched with
// `apt-get download` and unpacked with `dpkg -x`. Besides vmlinuz it leaves
// the module tree (with modules.dep from depmod) in cacheDir/modules/<ver>,
// the version in cacheDir/kernel-version (see KernelVersion) and the .deb
// file name in cacheDir/kernel-package.
//
// The package lists must be current: the caller (or CI) runs `apt-get
// update` beforehand; Kernel never does. Concurrent calls, also from
// different processes, are safe (flock on cacheDir/.lock, temp + rename).
func Kernel(ctx context.Context, cacheDir string) (string, error) {
	vmlinuz := filepath.Join(cacheDir, "vmlinuz")
	if _, err := os.Stat(vmlinuz); err == nil {
		return vmlinuz, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(vmlinuz); err == nil { // another process did it
		return vmlinuz, nil
	}
	if err := fetchKernel(ctx, cacheDir); err != nil {
		return "", fmt.Errorf("lab: fetching kernel: %w", err)
	}
	return vmlinuz, nil
}

// KernelVersion returns the version (uname -r) of the kernel cached in
// cacheDir by Kernel, e.g. "6.1.0-56-cloud-amd64".
func KernelVersion(cacheDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(cacheDir, "kernel-version"))
	return strings.TrimSpace(string(b)), err
}

// KernelModulesDir returns cacheDir/modules/<version> for the cached kernel.
func KernelModulesDir(cacheDir string) (string, error) {
	v, err := KernelVersion(cacheDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(cacheDir, "modules", v), nil
}

func fetchKernel(ctx context.Context, cacheDir string) error {
	pkg, err := kernelPackage(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".kernel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := run(ctx, tmp, "apt-get", "download", pkg); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: expected one .deb, got %v", pkg, debs)
	}
	root := filepath.Join(tmp, "root")
	if err := run(ctx, "", "dpkg", "-x", debs[0], root); err != nil {
		return err
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return fmt.Errorf("%s: expected one boot/vmlinuz-*, got %v", filepath.Base(debs[0]), kernels)
	}
	ver := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	mods := filepath.Join(root, "lib", "modules", ver)
	if _, err := os.Stat(mods); err != nil {
		mods = filepath.Join(root, "usr", "lib", "modules", ver)
		if err := os.MkdirAll(filepath.Join(root, "lib", "modules"), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(mods, filepath.Join(root, "lib", "modules", ver)); err != nil {
			return err
		}
	}
	if err := run(ctx, "", "depmod", "-b", root, ver); err != nil {
		return err
	}
	dstMods := filepath.Join(cacheDir, "modules", ver)
	if _, err := os.Stat(dstMods); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dstMods), 0o755); err != nil {
			return err
		}
		if err := os.Rename(mods, dstMods); err != nil {
			return err
		}
	}
	for name, content := range map[string]string{
		"kernel-version": ver + "\n",
		"kernel-package": filepath.Base(debs[0]) + "\n",
	} {
		err := writeAtomic(filepath.Join(cacheDir, name), func(f *os.File) error {
			_, err := f.WriteString(content)
			return err
		})
		if err != nil {
			return err
		}
	}
	// vmlinuz last: its presence means the cache is complete.
	return writeAtomic(filepath.Join(cacheDir, "vmlinuz"), func(f *os.File) error {
		b, err := os.ReadFile(kernels[0])
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		return err
	})
}

// kernelPackage resolves KernelMetaPackage to the real package name.
func kernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", KernelMetaPackage).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w (has apt-get update run?)", KernelMetaPackage, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.TrimPrefix(f[0], "|") == "Depends:" && kernelPkgRE.MatchString(f[1]) {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s: no linux-image-*-cloud-amd64 dependency (has apt-get update run?):\n%s", KernelMetaPackage, out)
}

func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, Tail(string(out), 20))
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling until ctx ends.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
