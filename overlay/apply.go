package overlay

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Verify checks that archive is the overlay the boot config pinned.
func Verify(archive []byte, sha string) error {
	sum := sha256.Sum256(archive)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, sha) {
		return fmt.Errorf("overlay: sha256 %s, the boot config pins %s", got, sha)
	}
	return nil
}

// Apply writes the overlay archive onto the folder root (the image's
// writable root before the pivot). Folders, regular files and symlinks
// only, owned by root; every name must stay inside root, and nothing it
// writes follows a symlink out of root (os.Root). A file replaces what the
// image has at that path (a symlink there is replaced, not followed). It
// returns the number of entries written.
func Apply(root string, archive []byte) (int, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return 0, fmt.Errorf("overlay: %w", err)
	}
	defer r.Close()
	tr := tar.NewReader(bytes.NewReader(archive))
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("overlay: entry %d: %w", n+1, err)
		}
		name, err := CleanName(h.Name)
		if err != nil {
			return n, err
		}
		if err := applyEntry(r, name, h, tr); err != nil {
			return n, fmt.Errorf("overlay: %s: %w", name, err)
		}
		n++
	}
}

// CleanName checks an archive entry's name: relative, no "..", no NUL, and
// returns it cleaned, without a trailing slash.
func CleanName(name string) (string, error) {
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	if name == "" || strings.ContainsRune(name, 0) || path.IsAbs(name) || !filepath.IsLocal(clean) || clean == "." {
		return "", fmt.Errorf("overlay: entry name %q is not a relative path inside the root", name)
	}
	return clean, nil
}

func applyEntry(r *os.Root, name string, h *tar.Header, body io.Reader) error {
	perm := fs.FileMode(h.Mode).Perm()
	if dir := path.Dir(name); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if st, err := r.Lstat(name); err == nil && !st.IsDir() {
			if err := r.Remove(name); err != nil {
				return err
			}
		}
		if err := r.Mkdir(name, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := r.Chmod(name, perm); err != nil {
			return err
		}
		return chown(r, name)
	case tar.TypeReg:
		if err := removeNonDir(r, name); err != nil {
			return err
		}
		f, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, io.LimitReader(body, MaxSize)); err != nil {
			f.Close()
			return err
		}
		if err := f.Chmod(perm); err != nil { // past the umask
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return chown(r, name)
	case tar.TypeSymlink:
		if err := removeNonDir(r, name); err != nil {
			return err
		}
		if err := r.Symlink(h.Linkname, name); err != nil {
			return err
		}
		return chown(r, name)
	}
	return fmt.Errorf("entry type %q is not a folder, a regular file or a symlink", h.Typeflag)
}

// removeNonDir removes what the image has at name, unless it is a folder
// (a file may not replace a folder: that is an error).
func removeNonDir(r *os.Root, name string) error {
	st, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("the image has a folder there")
	}
	return r.Remove(name)
}

// chown gives name to root (when running as root: the node always does).
func chown(r *os.Root, name string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return r.Lchown(name, 0, 0)
}
