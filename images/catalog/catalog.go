package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

var (
	// ErrNotFound: no such image, version or file.
	ErrNotFound = errors.New("not found")
	// ErrBadName: a name, version or file name that is not a plain name (see ValidName).
	ErrBadName = errors.New("bad name")
	// ErrExists: Publish was asked for a version that already exists.
	ErrExists = errors.New("version already exists")
	// ErrNotSquashfs: the rootfs given to Publish is not a squashfs image.
	ErrNotSquashfs = errors.New("not a squashfs image")
)

// Names of the files of a version folder.
const (
	FileKernel   = "kernel"
	FileRootfs   = "rootfs"
	FileModules  = "modules"
	FileTorrent  = "rootfs.torrent"
	FileManifest = "manifest.json"

	// Current is the name of the symlink to the current version; Manifest,
	// Path and MetaInfo accept it as a version.
	Current = "current"
)

// Prefixes of the catalog's private entries in ROOT/NAME (see Open).
const (
	incomingPrefix = ".incoming-"
	currentPrefix  = ".current-"
	deletingPrefix = ".deleting-"
)

// FileInfo describes one file of a version.
type FileInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes one published version: ROOT/NAME/VERSION/manifest.json.
type Manifest struct {
	Name        string              `json:"name"`
	Version     string              `json:"version"`
	Created     time.Time           `json:"created"`
	Files       map[string]FileInfo `json:"files"`        // "kernel", "rootfs", and "modules" if given
	InfoHash    string              `json:"infohash"`     // of rootfs.torrent, BitTorrent v1, 40 hex digits
	PieceLength int64               `json:"piece_length"` // of rootfs.torrent
	Pieces      int                 `json:"pieces"`       // number of pieces of rootfs.torrent
}

// Image is one image of the catalog and its versions, oldest first.
type Image struct {
	Name     string      `json:"name"`
	Current  string      `json:"current"` // "" if no version is current (first publish died before the switch)
	Versions []*Manifest `json:"versions"`
}

// Catalog is an image catalog rooted at Root (an absolute path).
type Catalog struct {
	Root string
}

// ValidName reports whether s may be used as an image name or version: 1 to
// 128 letters, digits, '-', '_' and '.', not starting with '.'.
func ValidName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func checkName(kind, s string) error {
	if !ValidName(s) {
		return fmt.Errorf("%w: %s %q", ErrBadName, kind, s)
	}
	return nil
}

// Open opens the catalog at root, creating the folder if needed, and removes
// the leftovers of publishes that crashed (.incoming-* folders, .current-*
// symlinks, .deleting-* folders) of every image not being published right now.
func Open(root string) (*Catalog, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	c := &Catalog{Root: root}
	names, err := c.names()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if err := c.cleanup(name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// cleanup removes the leftovers of crashed publishes of image name, unless a
// publish holds the image's lock.
func (c *Catalog) cleanup(name string) error {
	dir := filepath.Join(c.Root, name)
	unlock, err := lockDir(dir, false)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil // being published: its temporaries are in use
	}
	if err != nil {
		return err
	}
	defer unlock()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, incomingPrefix) || strings.HasPrefix(n, currentPrefix) || strings.HasPrefix(n, deletingPrefix) {
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("remove leftover %s: %w", filepath.Join(dir, n), err)
			}
			removed = true
		}
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// names lists the image folders, sorted.
func (c *Catalog) names() ([]string, error) {
	ents, err := os.ReadDir(c.Root)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && ValidName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// resolve checks name and version and resolves version "current".
func (c *Catalog) resolve(name, version string) (string, error) {
	if err := checkName("image name", name); err != nil {
		return "", err
	}
	if err := checkName("version", version); err != nil {
		return "", err
	}
	if version != Current {
		return version, nil
	}
	v, err := os.Readlink(filepath.Join(c.Root, name, Current))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("image %q: no current version: %w", name, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	if !ValidName(v) || v == Current {
		return "", fmt.Errorf("image %q: current points at %q, not a version", name, v)
	}
	return v, nil
}

// Path returns the path of file of a version ("current" is resolved, so the
// path stays valid when current switches). file is one of kernel, rootfs,
// modules, rootfs.torrent, rootfs.pieces, rootfs.pieces.blake3 and manifest.json. The error wraps ErrBadName for a
// name or version that is not a plain name, and ErrNotFound for an unknown
// file name or a missing image, version or file (modules is optional).
func (c *Catalog) Path(name, version, file string) (string, error) {
	switch file {
	case FileKernel, FileRootfs, FileModules, FileTorrent, FilePieces, FilePiecesBLAKE3, FileManifest:
	default:
		return "", fmt.Errorf("%w: no file %q in an image", ErrNotFound, file)
	}
	v, err := c.resolve(name, version)
	if err != nil {
		return "", err
	}
	p := filepath.Join(c.Root, name, v, file)
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("image %s version %s: no %s: %w", name, v, file, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", p)
	}
	return p, nil
}

// Manifest returns the manifest of a version; version may be "current".
func (c *Catalog) Manifest(name, version string) (*Manifest, error) {
	for try := 0; ; try++ {
		v, err := c.resolve(name, version)
		if err != nil {
			return nil, err
		}
		m, err := c.readManifest(name, v)
		// A version that was current when resolved may be pruned right after a
		// switch: resolve again.
		if version == Current && errors.Is(err, ErrNotFound) && try < 3 {
			continue
		}
		return m, err
	}
}

// Current returns the manifest of the current version of image name.
func (c *Catalog) Current(name string) (*Manifest, error) { return c.Manifest(name, Current) }

func (c *Catalog) readManifest(name, version string) (*Manifest, error) {
	p := filepath.Join(c.Root, name, version, FileManifest)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s version %s: %w", name, version, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if m.Name != name || m.Version != version {
		return nil, fmt.Errorf("%s: manifest is for %s version %s", p, m.Name, m.Version)
	}
	return &m, nil
}

// MetaInfo returns the stored rootfs.torrent of a version; version may be "current".
func (c *Catalog) MetaInfo(name, version string) (*metainfo.MetaInfo, error) {
	p, err := c.Path(name, version, FileTorrent)
	if err != nil {
		return nil, err
	}
	mi, err := metainfo.LoadFromFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return mi, nil
}

// versions returns the manifests of the versions of image name, oldest first.
// Folders without a manifest are not versions and are skipped.
func (c *Catalog) versions(name string) ([]*Manifest, error) {
	ents, err := os.ReadDir(filepath.Join(c.Root, name))
	if err != nil {
		return nil, err
	}
	var ms []*Manifest
	for _, e := range ents {
		v := e.Name()
		if !e.IsDir() || !ValidName(v) || v == Current {
			continue
		}
		m, err := c.readManifest(name, v)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	sortManifests(ms)
	return ms, nil
}

// sortManifests orders versions oldest first: by creation time, then by
// version name (naturally: v2 before v10).
func sortManifests(ms []*Manifest) {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return versionLess(a.Version, b.Version)
	})
}

// List returns every image that has at least one version, sorted by name,
// each with its versions oldest first.
func (c *Catalog) List() ([]Image, error) {
	names, err := c.names()
	if err != nil {
		return nil, err
	}
	var imgs []Image
	for _, name := range names {
		ms, err := c.versions(name)
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 {
			continue
		}
		cur, err := c.resolve(name, Current)
		if errors.Is(err, ErrNotFound) {
			cur, err = "", nil
		}
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, Image{Name: name, Current: cur, Versions: ms})
	}
	return imgs, nil
}
