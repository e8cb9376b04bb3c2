package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultKeep is the number of versions Publish keeps when PublishOptions.Keep is 0.
const DefaultKeep = 3

// Sources are the files Publish copies into a new version.
type Sources struct {
	Kernel string // a bzImage
	Rootfs string // a squashfs image
	// Modules is a kernel module tree such as lib/modules/6.1.0-56-cloud-amd64
	// (its base name is the kernel release); "" for none. Only the modules a
	// node needs to boot are packed (see PackModules).
	Modules string
}

// PublishOptions tune Publish.
type PublishOptions struct {
	Version  string // "" for the next "vN" (one more than the highest existing vN)
	Keep     int    // versions to keep, newest first (0: DefaultKeep); current is never removed
	Announce string // tracker URL written into rootfs.torrent ("" for none)
	// WebSeed is the BEP 19 url-list entry written into rootfs.torrent ("" for
	// none), e.g. http://10.99.0.1:8080/images/NAME/VERSION/ (ending in "/":
	// clients append the torrent name, "rootfs"). In WebSeed and Announce,
	// "{name}" and "{version}" are replaced by the image name and the version,
	// which is handy with automatic version numbers.
	WebSeed string
	// Progress, if not nil, counts the bytes of the rootfs read so far: it
	// is read twice (copied and hashed, then hashed into torrent pieces), 2
	// times its size in all.
	Progress *atomic.Int64
	// NoCurrent publishes the version without making it current (staged),
	// unless the image has no current version yet.
	NoCurrent bool
	// Protect lists versions pruning never removes (those hosts are
	// pinned to), besides the current one.
	Protect []string
}

// Publish copies src into a new version of image name, makes it current
// (unless o.NoCurrent and the image has a current version) and prunes old
// versions, atomically and crash-safely (see the package
// documentation). It refuses a rootfs that is not squashfs and a version that
// exists. If only pruning fails, the new version is published and current,
// and Publish returns its manifest together with the error.
func (c *Catalog) Publish(ctx context.Context, name string, src Sources, o PublishOptions) (*Manifest, error) {
	if err := checkName("image name", name); err != nil {
		return nil, err
	}
	if o.Version != "" && (!ValidName(o.Version) || o.Version == Current) {
		return nil, fmt.Errorf("%w: version %q", ErrBadName, o.Version)
	}
	if src.Kernel == "" || src.Rootfs == "" {
		return nil, errors.New("publish: a kernel and a rootfs are required")
	}
	if o.Keep <= 0 {
		o.Keep = DefaultKeep
	}
	dir := filepath.Join(c.Root, name)
	if err := c.mkdirSynced(dir); err != nil {
		return nil, err
	}
	unlock, err := lockDir(dir, true)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	defer unlock()

	version := o.Version
	if version == "" {
		if version, err = nextVersion(dir); err != nil {
			return nil, err
		}
	}
	final := filepath.Join(dir, version)
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("image %s version %s: %w", name, version, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	tmp, err := os.MkdirTemp(dir, incomingPrefix)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	r := strings.NewReplacer("{name}", name, "{version}", version)
	o.Announce, o.WebSeed = r.Replace(o.Announce), r.Replace(o.WebSeed)
	m, err := build(ctx, tmp, src, o)
	if err != nil {
		return nil, fmt.Errorf("publish %s version %s: %w", name, version, err)
	}
	m.Name, m.Version = name, version
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if _, err := createSynced(filepath.Join(tmp, FileManifest), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	crashPoint("manifest")
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	crashPoint("renamed")
	_, curErr := c.resolve(name, Current)
	if !o.NoCurrent || errors.Is(curErr, ErrNotFound) {
		if err := switchCurrent(dir, version); err != nil {
			return nil, err
		}
	}
	crashPoint("switched")
	_, err = c.prune(name, o.Keep, o.Protect...)
	crashPoint("pruned")
	if err != nil {
		return m, fmt.Errorf("published %s version %s, but pruning failed: %w", name, version, err)
	}
	return m, nil
}

// build fills the folder tmp with the files of a version and returns its
// manifest without name and version.
func build(ctx context.Context, tmp string, src Sources, o PublishOptions) (*Manifest, error) {
	m := &Manifest{Created: time.Now().UTC(), Files: map[string]FileInfo{}}
	var err error
	if m.Files[FileKernel], err = copyFile(ctx, filepath.Join(tmp, FileKernel), src.Kernel, nil, nil); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if m.Files[FileRootfs], err = copyFile(ctx, filepath.Join(tmp, FileRootfs), src.Rootfs, checkSquashfs(src.Rootfs), o.Progress); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if src.Modules != "" {
		if m.Files[FileModules], err = createSynced(filepath.Join(tmp, FileModules), func(w io.Writer) error {
			_, err := PackModules(ctx, w, src.Modules)
			return err
		}); err != nil {
			return nil, fmt.Errorf("modules: %w", err)
		}
	}
	crashPoint("copied")
	rootfs := filepath.Join(tmp, FileRootfs)
	mi, info, err := makeTorrent(ctx, rootfs, m.Files[FileRootfs].Size, m.Created, o.Announce, o.WebSeed, o.Progress)
	if err != nil {
		return nil, fmt.Errorf("torrent: %w", err)
	}
	if _, err := createSynced(filepath.Join(tmp, FileTorrent), mi.Write); err != nil {
		return nil, err
	}
	crashPoint("torrent")
	m.InfoHash = mi.HashInfoBytes().HexString()
	m.PieceLength = info.PieceLength
	m.Pieces = info.NumPieces()
	return m, nil
}

// SquashfsMagic begins every squashfs image.
const SquashfsMagic = "hsqs"

func checkSquashfs(path string) func([]byte) error {
	return func(head []byte) error {
		if !bytes.HasPrefix(head, []byte(SquashfsMagic)) {
			return fmt.Errorf("%s: %w: starts with %q, want %q", path, ErrNotSquashfs, head[:min(len(head), 4)], SquashfsMagic)
		}
		return nil
	}
}

// mkdirSynced creates the folder dir (in an existing parent) if needed, durably.
func (c *Catalog) mkdirSynced(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// nextVersion returns "v" and one more than the highest N of the vN folders of dir.
func nextVersion(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	highest := 0
	for _, e := range ents {
		n := e.Name()
		if len(n) < 2 || n[0] != 'v' || n[1] == '0' {
			continue
		}
		if i, err := strconv.Atoi(n[1:]); err == nil && i > highest && strconv.Itoa(i) == n[1:] {
			highest = i
		}
	}
	return "v" + strconv.Itoa(highest+1), nil
}

// switchCurrent points dir/current at version in one step: a temporary
// symlink renamed over it.
func switchCurrent(dir, version string) error {
	tmp := filepath.Join(dir, currentPrefix+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Symlink(version, tmp); err != nil {
		return err
	}
	crashPoint("symlinked")
	if err := os.Rename(tmp, filepath.Join(dir, Current)); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// SetCurrent makes an existing version of image name current (a rollback), in
// one step.
func (c *Catalog) SetCurrent(name, version string) error {
	if err := checkName("image name", name); err != nil {
		return err
	}
	if version == Current {
		return fmt.Errorf("%w: version %q", ErrBadName, version)
	}
	dir := filepath.Join(c.Root, name)
	unlock, err := lockDir(dir, true)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := c.Manifest(name, version); err != nil { // checks version
		return err
	}
	return switchCurrent(dir, version)
}

// Prune removes the versions of image name beyond the keep newest ones
// (by creation time), never the current one, and returns the versions removed.
func (c *Catalog) Prune(name string, keep int) ([]string, error) {
	if err := checkName("image name", name); err != nil {
		return nil, err
	}
	if keep <= 0 {
		return nil, fmt.Errorf("prune %s: keep must be positive, not %d", name, keep)
	}
	dir := filepath.Join(c.Root, name)
	unlock, err := lockDir(dir, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	return c.prune(name, keep)
}

// prune does Prune's work; the caller holds the image's lock. Versions are
// first renamed to .deleting-VERSION, so that none is ever seen half-deleted.
func (c *Catalog) prune(name string, keep int, protect ...string) ([]string, error) {
	dir := filepath.Join(c.Root, name)
	ms, err := c.versions(name)
	if err != nil {
		return nil, err
	}
	cur, err := c.resolve(name, Current)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	var doomed []string
	for i := 0; i < len(ms)-keep; i++ { // ms is oldest first
		if v := ms[i].Version; v != cur && !slices.Contains(protect, v) {
			doomed = append(doomed, v)
		}
	}
	if len(doomed) == 0 {
		return nil, nil
	}
	var trash []string
	for _, v := range doomed {
		t := filepath.Join(dir, deletingPrefix+v)
		if err := os.RemoveAll(t); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(dir, v), t); err != nil {
			return nil, err
		}
		trash = append(trash, t)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	for _, t := range trash {
		if err := os.RemoveAll(t); err != nil {
			return doomed, err
		}
	}
	return doomed, syncDir(dir)
}
