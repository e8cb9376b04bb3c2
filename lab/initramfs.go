package lab

import (
	"bufio"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// BusyboxPath is the static busybox (Debian busybox-static) put into every
// initramfs.
const BusyboxPath = "/bin/busybox"

// irEntry is one initramfs member: a directory, a symlink (link), an
// in-memory file (data), a host file (host) or a char device (dev).
type irEntry struct {
	mode       uint32
	link, host string
	data       []byte
	dev        *[2]uint32
}

// BuildInitramfs writes a gzip'd newc cpio to outPath containing
// /bin/busybox (which must be statically linked), symlinks for all its
// applets (from `busybox --list-full`), /dev/console and /dev/null nodes,
// the usual empty directories, and /init = initScript (mode 0755; start it
// with "#!/bin/sh"). extraFiles maps archive paths to host files (their
// permission bits are kept; missing parent directories are created) and
// overrides the defaults. The archive is deterministic and written
// atomically (temp file + rename).
func BuildInitramfs(outPath string, initScript string, extraFiles map[string]string) error {
	if err := checkStatic(BusyboxPath); err != nil {
		return err
	}
	out, err := exec.Command(BusyboxPath, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	ents := map[string]*irEntry{}
	var addDirs func(p string)
	addDirs = func(p string) {
		for d := path.Dir(p); d != "." && d != "/" && ents[d] == nil; d = path.Dir(d) {
			ents[d] = &irEntry{mode: modeDir | 0o755}
		}
	}
	add := func(p string, e *irEntry) {
		p = strings.TrimPrefix(path.Clean("/"+p), "/")
		addDirs(p)
		ents[p] = e
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "tmp", "root", "mnt"} {
		add(d, &irEntry{mode: modeDir | 0o755})
	}
	ents["tmp"].mode = modeDir | 0o1777
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if a := strings.TrimSpace(sc.Text()); a != "" {
			add(a, &irEntry{mode: modeLink | 0o777, link: "/bin/busybox"})
		}
	}
	add("bin/busybox", &irEntry{mode: modeReg | 0o755, host: BusyboxPath})
	add("dev/console", &irEntry{mode: modeChr | 0o600, dev: &[2]uint32{5, 1}})
	add("dev/null", &irEntry{mode: modeChr | 0o666, dev: &[2]uint32{1, 3}})
	add("init", &irEntry{mode: modeReg | 0o755, data: []byte(initScript)})
	for ap, hp := range extraFiles {
		fi, err := os.Stat(hp)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("initramfs: %s (for %s) is not a regular file", hp, ap)
		}
		add(ap, &irEntry{mode: modeReg | uint32(fi.Mode().Perm()), host: hp})
	}
	return writeAtomic(outPath, func(f *os.File) error { return writeInitramfs(f, ents) })
}

func writeInitramfs(f *os.File, ents map[string]*irEntry) error {
	names := make([]string, 0, len(ents))
	for n := range ents {
		names = append(names, n)
	}
	sort.Strings(names) // parents sort before their children
	zw := gzip.NewWriter(f)
	bw := bufio.NewWriterSize(zw, 1<<20)
	c := &cpioWriter{w: bw}
	for _, n := range names {
		e := ents[n]
		var err error
		switch {
		case e.dev != nil:
			err = c.device(n, e.mode&0o7777, e.dev[0], e.dev[1])
		case e.link != "":
			err = c.entry(n, e.mode, []byte(e.link))
		case e.host != "":
			err = c.streamFile(n, e.mode, e.host)
		default:
			err = c.entry(n, e.mode, e.data)
		}
		if err != nil {
			return err
		}
	}
	if err := c.close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

func (c *cpioWriter) streamFile(name string, mode uint32, host string) error {
	f, err := os.Open(host)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return c.stream(name, mode, fi.Size(), f)
}

// checkStatic fails unless the ELF file at p has no program interpreter.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w (install busybox-static)", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("initramfs: %s is dynamically linked (install busybox-static)", p)
		}
	}
	return nil
}

// writeAtomic writes a file via a temporary file in the same directory and
// renames it into place.
func writeAtomic(dst string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// MarkerInit returns an /init script that mounts proc and sys, prints
// marker and then "cmdline: <kernel command line>" to /dev/console, and
// powers the VM off.
func MarkerInit(marker string) string {
	return `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo ` + ShellQuote(marker) + ` > /dev/console
echo "cmdline: $(cat /proc/cmdline)" > /dev/console
poweroff -f
`
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
