package catalog

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// modinfo is what PackModules keeps of a module's .modinfo section.
type modinfo struct {
	deps    []string // the modules it depends on, relative to the tree
	aliases []string // its "alias=" patterns
}

// modinfoResolver returns the dependencies of a module read from its .modinfo
// section; ok is false if the module cannot be read (xz or zstd). Each
// module read is recorded in infos.
func modinfoResolver(dir string, mods map[string]bool, infos map[string]*modinfo) func(string) ([]string, bool, error) {
	byName := map[string]string{}
	for rel := range mods {
		n := moduleName(rel)
		// depmod prefers updates/ over the rest; otherwise keep the first path.
		if old, dup := byName[n]; !dup || strings.HasPrefix(rel, "updates/") || (!strings.HasPrefix(old, "updates/") && rel < old) {
			byName[n] = rel
		}
	}
	return func(rel string) ([]string, bool, error) {
		names, aliases, ok, err := readModinfo(filepath.Join(dir, filepath.FromSlash(rel)))
		if !ok || err != nil {
			return nil, ok, err
		}
		var deps []string
		for _, n := range names {
			d, found := byName[strings.ReplaceAll(n, "-", "_")]
			if !found {
				return nil, true, fmt.Errorf("%s depends on %s, which is not in the tree", rel, n)
			}
			deps = append(deps, d)
		}
		infos[rel] = &modinfo{deps: deps, aliases: aliases}
		return deps, true, nil
	}
}

// modulesDep returns a modules.dep for mods, in depmod's format: a line per
// module, "PATH:" and then every module it needs, directly or not, each
// before the ones it needs itself (modprobe loads them from the end).
func modulesDep(mods []string, infos map[string]*modinfo) []byte {
	var b bytes.Buffer
	for _, rel := range mods {
		var order []string // dependencies first (post-order)
		seen := map[string]bool{rel: true}
		var visit func(string)
		visit = func(m string) {
			ds := slices.Clone(infos[m].deps)
			sort.Strings(ds)
			for _, d := range ds {
				if !seen[d] {
					seen[d] = true
					visit(d)
					order = append(order, d)
				}
			}
		}
		visit(rel)
		slices.Reverse(order)
		b.WriteString(rel + ":")
		for _, d := range order {
			b.WriteString(" " + d)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// modulesAlias returns a modules.alias for mods, in depmod's format.
func modulesAlias(mods []string, infos map[string]*modinfo) []byte {
	var b bytes.Buffer
	b.WriteString("# Aliases extracted from modules themselves.\n")
	for _, rel := range mods {
		for _, a := range infos[rel].aliases {
			fmt.Fprintf(&b, "alias %s %s\n", a, moduleName(rel))
		}
	}
	return b.Bytes()
}

// readModinfo returns the module names in the "depends=" field and the
// "alias=" patterns of the .modinfo section of the module file p (.ko, or
// .ko.gz); ok is false for the compressions the standard library cannot read.
func readModinfo(p string) (depends, aliases []string, ok bool, err error) {
	var ra io.ReaderAt
	switch moduleExt(p) {
	case ".ko":
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, true, err
		}
		defer f.Close()
		ra = f
	case ".ko.gz":
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, true, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, nil, true, fmt.Errorf("%s: %w", p, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			return nil, nil, true, fmt.Errorf("%s: %w", p, err)
		}
		ra = bytes.NewReader(b)
	default:
		return nil, nil, false, nil
	}
	ef, err := elf.NewFile(ra)
	if err != nil {
		return nil, nil, true, fmt.Errorf("%s: %w", p, err)
	}
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, nil, true, fmt.Errorf("%s: no .modinfo section", p)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, nil, true, fmt.Errorf("%s: .modinfo: %w", p, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, found := bytes.CutPrefix(kv, []byte("depends=")); found {
			for _, n := range strings.Split(string(v), ",") {
				if n != "" {
					depends = append(depends, n)
				}
			}
		}
		if v, found := bytes.CutPrefix(kv, []byte("alias=")); found && len(v) > 0 {
			aliases = append(aliases, string(v))
		}
	}
	return depends, aliases, true, nil
}
