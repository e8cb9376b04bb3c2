package lab

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// depmodOutputs are the top-level files of a module tree that depmod
// writes; a kernel package unpacked with dpkg -x has none of them.
var depmodOutputs = []string{"modules.dep", "modules.alias", "modules.symbols", "modules.softdep",
	"modules.devname", "modules.builtin.bin", "modules.builtin.alias.bin", "modules.weakdep"}

// CopyModulesUndepmodded copies the module tree src (such as the one
// KernelModulesDir returns) to dst as the kernel package holds it, without
// what depmod made (modules.dep, modules.alias, ...): the tree of a kernel
// package unpacked with dpkg -x. Files are hard links where possible.
func CopyModulesUndepmodded(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil // build and source links
		}
		if rel == d.Name() {
			for _, o := range depmodOutputs {
				if strings.HasPrefix(rel, o) {
					return nil
				}
			}
		}
		if os.Link(p, to) == nil {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}
