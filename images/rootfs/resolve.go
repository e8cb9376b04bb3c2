package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks bounds the symlinks followed while resolving one path, as the
// kernel's ELOOP does.
const maxLinks = 40

// Resolve returns the clean relative path (no symlink among its existing
// elements) that the relative path rel names inside the folder root, as a
// process chrooted into root would see it: symlinks are followed, absolute
// targets are taken from root, and a link whose target climbs above root is
// refused (wrapping ErrUnsafe). With followLast false the last element is
// not followed (as lstat and link(2) do). Elements that do not exist yet
// are kept as they are.
func Resolve(root, rel string, followLast bool) (string, error) {
	// Each element remembers the link whose target it came from, for errors.
	type element struct{ name, from string }
	var pending []element
	for _, el := range split(rel) {
		pending = append(pending, element{el, ""})
	}
	done := ""
	links := 0
	for len(pending) > 0 {
		el := pending[0]
		pending = pending[1:]
		switch el.name {
		case "", ".":
			continue
		case "..":
			if done == "" && el.from != "" {
				return "", fmt.Errorf("%w: link %s points outside the root", ErrUnsafe, el.from)
			}
			if done == "" {
				return "", fmt.Errorf("%w: %s leads out of the root", ErrUnsafe, rel)
			}
			done = parent(done)
			continue
		}
		cand := path.Join(done, el.name)
		if len(pending) == 0 && !followLast {
			done = cand
			break
		}
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(cand)))
		if errors.Is(err, fs.ErrNotExist) {
			done = cand
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links", rel)
			}
			target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(cand)))
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(target, "/") {
				done = ""
			}
			var expanded []element
			for _, t := range split(target) {
				expanded = append(expanded, element{t, "/" + cand + " -> " + target})
			}
			pending = append(expanded, pending...)
			continue
		}
		if !fi.IsDir() && len(pending) > 0 {
			return "", fmt.Errorf("/%s is not a folder", cand)
		}
		done = cand
	}
	if done == "" {
		return ".", nil
	}
	return done, nil
}

func split(p string) []string {
	if p == "" || p == "." {
		return nil
	}
	return strings.Split(p, "/")
}

func parent(p string) string {
	if d := path.Dir(p); d != "." {
		return d
	}
	return ""
}
