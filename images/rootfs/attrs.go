package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// attrs gives rel the owner, mode, extended attributes and times of hdr.
// rel's folder has just been resolved inside the root.
func (x *Extractor) attrs(rel string, hdr *tar.Header) error {
	p := x.host(rel)
	if err := x.checkOwner(hdr); err != nil {
		return err
	}
	if x.owner {
		if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := os.Chmod(p, modeOf(hdr)); err != nil {
			return err
		}
	}
	for _, k := range xattrKeys(hdr) {
		name := strings.TrimPrefix(k, "SCHILY.xattr.")
		if err := unix.Lsetxattr(p, name, []byte(hdr.PAXRecords[k]), 0); err != nil {
			return fmt.Errorf("extended attribute %s: %w", name, err)
		}
	}
	atime, mtime := timesOf(hdr)
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// checkOwner refuses, when not running as root, an entry owned by someone
// else: it could not be given its owner.
func (x *Extractor) checkOwner(hdr *tar.Header) error {
	if !x.owner && (hdr.Uid != os.Getuid() || hdr.Gid != os.Getgid()) {
		return fmt.Errorf("owned by %d:%d: extracting it needs root", hdr.Uid, hdr.Gid)
	}
	return nil
}

// modeOf is the permission bits hdr gives its entry.
func modeOf(hdr *tar.Header) fs.FileMode {
	return hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// xattrKeys lists, sorted, hdr's PAX records that carry extended attributes.
func xattrKeys(hdr *tar.Header) []string {
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// timesOf is hdr's access and modification times (the access time defaults
// to the modification time).
func timesOf(hdr *tar.Header) (atime, mtime time.Time) {
	atime = hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return atime, hdr.ModTime
}

// Finish gives the folders their modes, owners and times, deepest first.
// Every call goes through an os.Root of the root folder, on a folder that
// still resolves to its own path (no symlink on the way), so that nothing a
// later layer put in place can lead it out of the root.
func (x *Extractor) Finish() error {
	r, err := os.OpenRoot(x.root)
	if err != nil {
		return err
	}
	defer r.Close()
	rels := make([]string, 0, len(x.dirs))
	for rel := range x.dirs {
		rels = append(rels, rel)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(rels)))
	for _, rel := range rels {
		if got, err := Resolve(x.root, rel, false); err != nil || got != rel {
			continue // a later layer put a symlink or a file on the way
		}
		fi, err := r.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
			continue // removed or replaced by a later layer
		}
		if err != nil {
			return err
		}
		if err := x.dirAttrs(r, rel, x.dirs[rel]); err != nil {
			return fmt.Errorf("folder /%s: %w", rel, err)
		}
	}
	return nil
}

// dirAttrs gives the folder rel inside r the owner, mode, extended
// attributes and times of hdr, through a descriptor opened inside r.
func (x *Extractor) dirAttrs(r *os.Root, rel string, hdr *tar.Header) error {
	if err := x.checkOwner(hdr); err != nil {
		return err
	}
	f, err := r.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if x.owner {
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(modeOf(hdr)); err != nil {
		return err
	}
	for _, k := range xattrKeys(hdr) {
		name := strings.TrimPrefix(k, "SCHILY.xattr.")
		if err := unix.Fsetxattr(int(f.Fd()), name, []byte(hdr.PAXRecords[k]), 0); err != nil {
			return fmt.Errorf("extended attribute %s: %w", name, err)
		}
	}
	atime, mtime := timesOf(hdr)
	if err := r.Chtimes(rel, atime, mtime); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}
