// Package fileroot opens files named by network clients (TFTP file names,
// HTTP paths) inside a fixed set of folders. A name that would leave them —
// "..", an absolute path, a symlink pointing outside — is refused, never
// resolved.
package fileroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"unicode/utf8"
)

// ErrBadName is returned for a name that tries to leave the folders or is
// not a plain relative file name.
var ErrBadName = errors.New("file name refused")

// CleanName validates a client-supplied name and returns its clean, relative
// form. It refuses empty names, NUL and control bytes, backslashes, absolute
// paths and any ".." element.
func CleanName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrBadName)
	}
	if len(name) > 1024 {
		return "", fmt.Errorf("%w: name longer than 1024 bytes", ErrBadName)
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", fmt.Errorf("%w: %q contains a control byte or backslash", ErrBadName, name)
		}
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: %q is not UTF-8", ErrBadName, name)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q is an absolute path", ErrBadName, name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%w: %q contains '..'", ErrBadName, name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", fmt.Errorf("%w: %q names no file", ErrBadName, name)
	}
	return clean, nil
}

// Roots is an ordered list of folders; a name is looked up in each in turn.
type Roots []string

// Open opens name, the first regular file of that name found inside one of
// the folders. Symlinks are followed only while they stay inside the folder
// (os.Root enforces that). The error wraps ErrBadName for refused names and
// fs.ErrNotExist when no folder has the file.
func (r Roots) Open(name string) (*os.File, error) {
	clean, err := CleanName(name)
	if err != nil {
		return nil, err
	}
	for _, dir := range r {
		f, err := openIn(dir, clean)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: %w", clean, fs.ErrNotExist)
}

func openIn(dir, name string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open folder %s: %w", dir, err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		// os.Root refuses links and names that escape the folder.
		return nil, fmt.Errorf("%w: %s in %s: %v", ErrBadName, name, dir, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadName, name)
	}
	return f, nil
}
