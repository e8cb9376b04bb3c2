package catalog

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// modinfoResolver returns the dependencies of a module read from its .modinfo
// section; ok is false if the module cannot be read (xz or zstd).
func modinfoResolver(dir string, mods map[string]bool) func(string) ([]string, bool, error) {
	byName := map[string]string{}
	for rel := range mods {
		n := moduleName(rel)
		// depmod prefers updates/ over the rest; otherwise keep the first path.
		if old, dup := byName[n]; !dup || strings.HasPrefix(rel, "updates/") || (!strings.HasPrefix(old, "updates/") && rel < old) {
			byName[n] = rel
		}
	}
	return func(rel string) ([]string, bool, error) {
		names, ok, err := modinfoDepends(filepath.Join(dir, filepath.FromSlash(rel)))
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
		return deps, true, nil
	}
}

// modinfoDepends returns the module names in the "depends=" field of the
// .modinfo section of the module file p (.ko, or .ko.gz); ok is false for
// the compressions the standard library cannot read.
func modinfoDepends(p string) (names []string, ok bool, err error) {
	var ra io.ReaderAt
	switch moduleExt(p) {
	case ".ko":
		f, err := os.Open(p)
		if err != nil {
			return nil, true, err
		}
		defer f.Close()
		ra = f
	case ".ko.gz":
		f, err := os.Open(p)
		if err != nil {
			return nil, true, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, true, fmt.Errorf("%s: %w", p, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			return nil, true, fmt.Errorf("%s: %w", p, err)
		}
		ra = bytes.NewReader(b)
	default:
		return nil, false, nil
	}
	ef, err := elf.NewFile(ra)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", p, err)
	}
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, true, fmt.Errorf("%s: no .modinfo section", p)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, true, fmt.Errorf("%s: .modinfo: %w", p, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, found := bytes.CutPrefix(kv, []byte("depends=")); found {
			for _, n := range strings.Split(string(v), ",") {
				if n != "" {
					names = append(names, n)
				}
			}
		}
	}
	return names, true, nil
}
