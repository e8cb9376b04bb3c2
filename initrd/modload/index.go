// Package modload decides which kernel modules the node initramfs loads and
// loads them: only the drivers the machine's hardware asks for, as udev and
// kmod do, and the few the boot always needs.
//
// Every device the kernel knows has a modalias (/sys/devices/**/modalias,
// such as "pci:v00001AF4d00001000sv...bc02sc00i00"); modules.alias maps
// glob patterns over such strings to module names, and modules.dep gives
// each module's dependencies. A device's driver may itself add devices
// (virtio_pci adds the virtio devices that virtio_net and virtio_blk
// drive), so loading repeats until a scan of the devices matches nothing
// new. Modules load in parallel, each once its dependencies have.
//
// AlwaysLoad lists what loads whatever the devices: filesystems and the
// loop driver, which no device asks for, and the SCSI disk driver, whose
// devices appear only after a host adapter's asynchronous scan.
//
// The decisions (parsing, glob matching, dependency closure) are pure
// functions; load_linux.go reads sysfs and calls finit_module.
package modload

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// AlwaysLoad are the modules loaded whatever the hardware, when the
// modules archive has them: squashfs (the image), overlay (its RAM overlay),
// loop (an image cached in RAM is mounted through a loop device) and sd_mod
// (SCSI, SATA and USB disks as cache devices: their devices appear
// asynchronously, after the host adapter's driver has returned, and a
// rescan could miss them). ext4 and vfat are not needed: the node mounts
// only the squashfs image (from a file or straight from the cache device)
// and tmpfs.
var AlwaysLoad = []string{"squashfs", "overlay", "loop", "sd_mod"}

// Alias is one line of modules.alias: devices whose modalias matches
// Pattern (a glob) are driven by Module.
type Alias struct {
	Pattern string
	Module  string
}

// Module is one line of modules.dep.
type Module struct {
	// Path is the module file, relative to the module tree.
	Path string
	// Deps are the names of the modules it needs, directly or not.
	Deps []string
}

var moduleExts = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

func isModuleFile(p string) bool {
	for _, ext := range moduleExts {
		if strings.HasSuffix(p, ext) && len(path.Base(p)) > len(ext) {
			return true
		}
	}
	return false
}

// Name is the name the kernel and modules.alias use for a module file:
// its base name without the extension, '-' written '_'.
func Name(file string) string {
	b := path.Base(file)
	for _, ext := range moduleExts {
		if strings.HasSuffix(b, ext) {
			b = strings.TrimSuffix(b, ext)
			break
		}
	}
	return strings.ReplaceAll(b, "-", "_")
}

// ParseAliases reads modules.alias: lines "alias PATTERN MODULE"; blank
// lines and '#' comments are skipped. A malformed line is an error naming
// the line.
func ParseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' {
			continue
		}
		f := strings.Fields(t)
		if len(f) != 3 || f[0] != "alias" {
			return nil, fmt.Errorf("modules.alias line %d: want \"alias PATTERN MODULE\", got %q", line, clip(t))
		}
		out = append(out, Alias{Pattern: f[1], Module: strings.ReplaceAll(f[2], "-", "_")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.alias: %w", err)
	}
	return out, nil
}

// ParseDep reads modules.dep (depmod's format: "PATH: DEP-PATH ...", paths
// relative to the tree or absolute under /lib/modules/RELEASE/) into
// modules by name. A malformed line is an error naming the line.
func ParseDep(r io.Reader) (map[string]Module, error) {
	out := map[string]Module{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' {
			continue
		}
		p, rest, ok := strings.Cut(t, ":")
		p = relPath(strings.TrimSpace(p))
		if !ok || !isModuleFile(p) {
			return nil, fmt.Errorf("modules.dep line %d: want \"MODULE.ko: DEPENDENCY.ko ...\", got %q", line, clip(t))
		}
		m := Module{Path: p}
		for _, d := range strings.Fields(rest) {
			m.Deps = append(m.Deps, Name(relPath(d)))
		}
		out[Name(p)] = m
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	return out, nil
}

// relPath turns "/lib/modules/RELEASE/kernel/x.ko" into "kernel/x.ko".
func relPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "/lib/modules/"); ok {
		if _, after, ok := strings.Cut(rest, "/"); ok {
			return after
		}
	}
	return p
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Match returns the modules whose alias patterns match modalias, in
// modules.alias order, each once. As with modprobe, every match counts.
func Match(aliases []Alias, modalias string) []string {
	var out []string
	for _, a := range aliases {
		if Glob(a.Pattern, modalias) && !contains(out, a.Module) {
			out = append(out, a.Module)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
