package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"moobi/images/rootfs"
)

// Kernel is the kernel found in a root filesystem.
type Kernel struct {
	Path    string   // the kernel image, on the host
	Name    string   // its path in the root, e.g. /boot/vmlinuz-6.1.0-57-cloud-amd64
	Release string   // e.g. 6.1.0-57-cloud-amd64
	Modules string   // the module tree lib/modules/RELEASE on the host; "" if the root has none
	Others  []string // the releases of the other kernels found, newest first
}

// FindKernel finds the newest kernel of the root filesystem folder root:
// /boot/vmlinuz-RELEASE (and what /vmlinuz and /boot/vmlinuz point to), with
// its module tree /lib/modules/RELEASE or /usr/lib/modules/RELEASE. Paths
// are resolved inside root, as the booted system sees them: a symlink never
// leads to a host file, and one that climbs out of the root is refused.
func FindKernel(root string) (Kernel, error) {
	releases := map[string]string{} // release -> resolved path in the root
	boot, err := rootfs.Resolve(root, "boot", true)
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel folder /boot: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(boot)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Kernel{}, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, path.Join(boot, e.Name()))
	}
	for _, name := range append(names, "vmlinuz", "boot/vmlinuz") {
		p, err := rootfs.Resolve(root, name, true)
		if err != nil {
			if errors.Is(err, rootfs.ErrUnsafe) {
				return Kernel{}, fmt.Errorf("kernel /%s: %w", name, err)
			}
			continue
		}
		r, ok := strings.CutPrefix(path.Base(p), "vmlinuz-")
		if !ok {
			r, ok = strings.CutPrefix(path.Base(name), "vmlinuz-")
		}
		if ok && r != "" && r != "." && r != ".." {
			releases[r] = p
		}
	}
	var found []string
	for r, p := range releases {
		if fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(p))); err == nil && fi.Mode().IsRegular() {
			found = append(found, r)
		}
	}
	if len(found) == 0 {
		return Kernel{}, fmt.Errorf("no kernel in the root (no /boot/vmlinuz-*): install a kernel package in it (Debian: linux-image-cloud-amd64), or pass --kernel and --modules")
	}
	sort.Slice(found, func(i, j int) bool { return CompareVersions(found[i], found[j]) > 0 })
	k := Kernel{Release: found[0], Name: "/" + releases[found[0]], Others: found[1:]}
	k.Path = filepath.Join(root, filepath.FromSlash(releases[k.Release]))
	k.Modules, err = FindModules(root, k.Release)
	return k, err
}

// FindModules returns the module tree of release in root on the host, ""
// if there is none. A tree whose path climbs out of root is refused.
func FindModules(root, release string) (string, error) {
	for _, dir := range []string{"lib/modules/", "usr/lib/modules/"} {
		p, err := rootfs.Resolve(root, dir+release, true)
		if err != nil {
			return "", fmt.Errorf("module tree /%s%s: %w", dir, release, err)
		}
		host := filepath.Join(root, filepath.FromSlash(p))
		if fi, err := os.Lstat(host); err == nil && fi.IsDir() {
			return host, nil
		}
	}
	return "", nil
}

// CompareVersions orders kernel releases: runs of digits compare as
// numbers, the rest byte by byte ("6.1.0-10" > "6.1.0-9"). It returns -1,
// 0 or 1.
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		ra, rest1 := run(a)
		rb, rest2 := run(b)
		if c := compareRun(ra, rb); c != 0 {
			return c
		}
		a, b = rest1, rest2
	}
	switch {
	case a == b:
		return 0
	case a == "":
		return -1
	}
	return 1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// run splits s after its leading run of digits, or of non-digits.
func run(s string) (string, string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func compareRun(a, b string) int {
	if isDigit(a[0]) && isDigit(b[0]) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}
