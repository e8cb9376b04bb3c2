package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Stats count what an Extractor did.
type Stats struct {
	Entries    int   // tar entries read
	Files      int   // regular files written
	Bytes      int64 // bytes of regular files written
	DevSkipped int   // entries under /dev/ skipped
	Whiteouts  int   // OCI whiteouts applied (opaque folders included)
}

// An Extractor writes tar streams into a root folder, one after the other
// (the layers of an OCI image, lowest first, or a single tarball). Call
// Finish once all are written: folder modes, owners and times are set last,
// so that a read-only folder can still be filled.
type Extractor struct {
	root  string
	owner bool                   // running as root: chown as the archive says
	dirs  map[string]*tar.Header // folder attributes to apply in Finish
	layer map[string]bool        // paths written by the current OCI layer
	Stats
}

// NewExtractor returns an Extractor into the existing folder root.
func NewExtractor(root string) *Extractor {
	return &Extractor{root: root, owner: os.Geteuid() == 0, dirs: map[string]*tar.Header{}}
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Tarball extracts a plain tar stream: whiteout names are ordinary files.
func (x *Extractor) Tarball(ctx context.Context, r io.Reader) error { return x.stream(ctx, r, false) }

// Layer extracts an OCI layer over what earlier layers wrote: ".wh.NAME"
// deletes NAME, ".wh..wh..opq" empties its folder of what lower layers put
// there, and an entry replaces whatever lower layers had at its path.
func (x *Extractor) Layer(ctx context.Context, r io.Reader) error {
	x.layer = map[string]bool{".": true}
	defer func() { x.layer = nil }()
	return x.stream(ctx, r, true)
}

func (x *Extractor) stream(ctx context.Context, r io.Reader, layered bool) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the tar stream after %d entries: %w", x.Entries, err)
		}
		x.Entries++
		if err := x.entry(ctx, hdr, tr, layered); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
}

func (x *Extractor) host(rel string) string { return filepath.Join(x.root, filepath.FromSlash(rel)) }

func (x *Extractor) entry(ctx context.Context, hdr *tar.Header, r io.Reader, layered bool) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	rel, err := CleanName(hdr.Name)
	if err != nil {
		return err
	}
	if underDev(rel) {
		x.DevSkipped++
		return nil
	}
	base := path.Base(rel)
	if layered && strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(rel)
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("the root is not a folder (type %q)", hdr.Typeflag)
		}
		x.dirs["."] = hdr
		return nil
	}
	dir, err := Resolve(x.root, path.Dir(rel), true)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(x.host(dir), 0o755); err != nil {
		return err
	}
	final := path.Join(dir, base)
	x.mark(final)
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(x.host(final))
		if err == nil && fi.IsDir() {
			x.dirs[final] = hdr
			return nil
		}
		if err := x.clear(final, layered); err != nil {
			return err
		}
		x.dirs[final] = hdr
		return os.Mkdir(x.host(final), 0o755)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
		if err := x.clear(final, layered); err != nil {
			return err
		}
		f, err := os.OpenFile(x.host(final), os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, ctxReader{ctx, r})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		x.Files++
		x.Bytes += n
		return x.attrs(final, hdr)
	case tar.TypeSymlink:
		if err := x.clear(final, layered); err != nil {
			return err
		}
		if err := os.Symlink(hdr.Linkname, x.host(final)); err != nil {
			return err
		}
		return x.attrs(final, hdr)
	case tar.TypeLink:
		target, err := CleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		if target, err = Resolve(x.root, target, false); err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		fi, err := os.Lstat(x.host(target))
		if err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		if fi.IsDir() {
			return fmt.Errorf("hard link to %q, a folder", hdr.Linkname)
		}
		if target == final {
			return nil // a link to itself: already there
		}
		if err := x.clear(final, layered); err != nil {
			return err
		}
		return os.Link(x.host(target), x.host(final))
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("%w: a device node (%d:%d) outside /dev/", ErrUnsafe, hdr.Devmajor, hdr.Devminor)
	case tar.TypeFifo:
		if err := x.clear(final, layered); err != nil {
			return err
		}
		if err := unix.Mkfifo(x.host(final), 0o600); err != nil {
			return err
		}
		return x.attrs(final, hdr)
	}
	return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
}

// mark records that the current layer wrote rel and its folders.
func (x *Extractor) mark(rel string) {
	for x.layer != nil && rel != "." && !x.layer[rel] {
		x.layer[rel] = true
		rel = path.Dir(rel)
	}
}

// clear removes what is at rel before an entry takes its place. Outside a
// layer (a plain tarball) a folder that is not empty is not replaced.
func (x *Extractor) clear(rel string, layered bool) error {
	fi, err := os.Lstat(x.host(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		x.forget(rel)
		if !layered {
			if err := os.Remove(x.host(rel)); err != nil {
				return fmt.Errorf("would replace the folder /%s: %w", rel, err)
			}
			return nil
		}
	}
	return os.RemoveAll(x.host(rel))
}

// forget drops the folder attributes recorded for rel and everything under
// it: once rel is gone, a later layer may put a symlink there, and Finish
// must not reach through it.
func (x *Extractor) forget(rel string) {
	delete(x.dirs, rel)
	for k := range x.dirs {
		if strings.HasPrefix(k, rel+"/") {
			delete(x.dirs, k)
		}
	}
}

// whiteout applies the OCI whiteout entry rel.
func (x *Extractor) whiteout(rel string) error {
	dir, err := Resolve(x.root, path.Dir(rel), true)
	if err != nil {
		return err
	}
	x.Whiteouts++
	base := path.Base(rel)
	if base == opaqueMarker {
		x.mark(dir)
		return x.opaque(dir)
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: bad whiteout name", ErrUnsafe)
	}
	target := path.Join(dir, name)
	if x.layer[target] {
		return nil // whiteouts hide lower layers only
	}
	x.forget(target)
	return os.RemoveAll(x.host(target))
}

// opaque removes from the folder dir everything lower layers put there.
func (x *Extractor) opaque(dir string) error {
	ents, err := os.ReadDir(x.host(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		rel := path.Join(dir, e.Name())
		switch {
		case !x.layer[rel]:
			x.forget(rel)
			if err := os.RemoveAll(x.host(rel)); err != nil {
				return err
			}
		case e.IsDir():
			if err := x.opaque(rel); err != nil {
				return err
			}
		}
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (cr ctxReader) Read(p []byte) (int, error) {
	if err := cr.ctx.Err(); err != nil {
		return 0, err
	}
	return cr.r.Read(p)
}
