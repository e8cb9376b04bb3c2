package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxMetaSize bounds the index, manifest and config blobs read into memory.
const maxMetaSize = 16 << 20

// blobStore reads the files of an OCI image layout: a folder, or a tar
// archive of one.
type blobStore interface {
	open(name string) (io.ReadCloser, error)
	Close() error
}

type dirStore string

func (d dirStore) open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
}

func (dirStore) Close() error { return nil }

// tarStore reads the members of an uncompressed tar archive in place.
type tarStore struct {
	f       *os.File
	members map[string]*io.SectionReader
}

// openTarStore indexes the regular files of the tar archive p.
func openTarStore(p string) (*tarStore, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	s := &tarStore{f: f, members: map[string]*io.SectionReader{}}
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			continue
		}
		// archive/tar reads nothing past a header before the file's data.
		s.members[path.Clean(strings.TrimPrefix(hdr.Name, "./"))] = io.NewSectionReader(f, cr.n, hdr.Size)
	}
}

func (s *tarStore) open(name string) (io.ReadCloser, error) {
	m, ok := s.members[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w in the archive", name, fs.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(m, 0, m.Size())), nil
}

func (s *tarStore) Close() error { return s.f.Close() }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progressReader adds the bytes read to n.
type progressReader struct {
	r io.Reader
	n *atomic.Int64
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n.Add(int64(n))
	return n, err
}

func blobName(h v1.Hash) (string, error) {
	if h.Algorithm == "" || h.Hex == "" || strings.ContainsAny(h.Algorithm+h.Hex, "/.") {
		return "", fmt.Errorf("bad digest %q", h)
	}
	return path.Join("blobs", h.Algorithm, h.Hex), nil
}

// readBlob reads a small blob and checks its size and digest.
func readBlob(s blobStore, d v1.Descriptor) ([]byte, error) {
	name, err := blobName(d.Digest)
	if err != nil {
		return nil, err
	}
	if d.Size > maxMetaSize {
		return nil, fmt.Errorf("blob %s: %d bytes is too large for a %s", d.Digest, d.Size, d.MediaType)
	}
	rc, err := s.open(name)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxMetaSize+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if got, _, _ := v1.SHA256(bytes.NewReader(b)); got != d.Digest || int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s is corrupt: %d bytes with digest %s, the descriptor says %d bytes", d.Digest, len(b), got, d.Size)
	}
	return b, nil
}

// ociLayer is one layer to apply: where to read it and what it must hash to.
type ociLayer struct {
	desc   v1.Descriptor // Digest and Size of the blob as stored
	diffID v1.Hash       // the digest of its uncompressed tar stream
	open   func() (io.ReadCloser, error)
}

// ociLayers reads the index, the image manifest (linux/amd64 if there are
// several) and the config of the layout in s, verified, and returns the
// image's layers, lowest first.
func ociLayers(s blobStore) ([]ociLayer, error) {
	rc, err := s.open("index.json")
	if err != nil {
		return nil, fmt.Errorf("not an OCI image layout: %w", err)
	}
	idx, err := v1.ParseIndexManifest(io.LimitReader(rc, maxMetaSize))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	desc, err := pickImage(s, idx, 0)
	if err != nil {
		return nil, err
	}
	b, err := readBlob(s, desc)
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("image manifest %s: %w", desc.Digest, err)
	}
	b, err = readBlob(s, m.Config)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("image config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: %d layers but %d diff_ids in its config", desc.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	var layers []ociLayer
	for i, l := range m.Layers {
		name, err := blobName(l.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		layers = append(layers, ociLayer{desc: l, diffID: cfg.RootFS.DiffIDs[i], open: func() (io.ReadCloser, error) { return s.open(name) }})
	}
	return layers, nil
}

// pickImage returns the image manifest of idx: the only one, or the only
// linux/amd64 one; nested indexes are followed.
func pickImage(s blobStore, idx *v1.IndexManifest, depth int) (v1.Descriptor, error) {
	var images []v1.Descriptor
	for _, d := range idx.Manifests {
		switch {
		case d.MediaType.IsImage():
			images = append(images, d)
		case d.MediaType.IsIndex() && depth < 4:
			b, err := readBlob(s, d)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("image index: %w", err)
			}
			sub, err := v1.ParseIndexManifest(bytes.NewReader(b))
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("image index %s: %w", d.Digest, err)
			}
			img, err := pickImage(s, sub, depth+1)
			if err != nil {
				return v1.Descriptor{}, err
			}
			images = append(images, img)
		}
	}
	if len(images) == 1 {
		return images[0], nil
	}
	var amd64 []v1.Descriptor
	var seen []string
	for _, d := range images {
		if p := d.Platform; p != nil {
			seen = append(seen, p.OS+"/"+p.Architecture)
			if p.OS == "linux" && p.Architecture == "amd64" {
				amd64 = append(amd64, d)
			}
		}
	}
	if len(amd64) == 1 {
		return amd64[0], nil
	}
	return v1.Descriptor{}, fmt.Errorf("the layout holds %d images (platforms %v): want one, or one for linux/amd64", len(images), seen)
}

// applyLayer extracts one layer, checking its blob digest and size and the
// digest of its tar stream. A blob that does not match its digest is
// reported as corrupt even when it fails to decompress first.
func applyLayer(ctx context.Context, x *Extractor, l ociLayer, label string, read *atomic.Int64) error {
	rc, err := l.open()
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	defer rc.Close()
	var blobSum hash.Hash
	raw := io.Reader(rc)
	if l.desc.Digest.Algorithm != "" {
		if blobSum, err = v1.Hasher(l.desc.Digest.Algorithm); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		raw = io.TeeReader(rc, blobSum)
	}
	blob := &countingReader{r: raw}
	checkBlob := func() error {
		if blobSum == nil {
			return nil
		}
		if _, err := io.Copy(io.Discard, blob); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		got := v1.Hash{Algorithm: l.desc.Digest.Algorithm, Hex: fmt.Sprintf("%x", blobSum.Sum(nil))}
		if got != l.desc.Digest || blob.n != l.desc.Size {
			return fmt.Errorf("%s: blob is corrupt: %d bytes with digest %s, the manifest says %d bytes with digest %s",
				label, blob.n, got, l.desc.Size, l.desc.Digest)
		}
		return nil
	}
	tarStream, _, err := decompress(progressReader{blob, read})
	if err != nil {
		if cerr := checkBlob(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("%s: %w", label, err)
	}
	defer tarStream.Close()
	diffSum, err := v1.Hasher(l.diffID.Algorithm)
	if err != nil {
		return fmt.Errorf("%s: diff_id: %w", label, err)
	}
	stream := &errReader{r: tarStream}
	tee := io.TeeReader(stream, diffSum)
	err = x.Layer(ctx, tee)
	if err == nil {
		_, err = io.Copy(io.Discard, tee) // the end of the archive, and padding
	} else if stream.err == nil {
		io.Copy(io.Discard, tee) // to tell a corrupt layer from a bad entry
	}
	if cerr := checkBlob(); cerr != nil {
		return cerr
	}
	if stream.err != nil {
		return fmt.Errorf("%s: layer is corrupt: %w", label, stream.err)
	}
	if got := fmt.Sprintf("%x", diffSum.Sum(nil)); got != l.diffID.Hex {
		return fmt.Errorf("%s: layer is corrupt: its tar stream has digest %s:%s, the image config says %s", label, l.diffID.Algorithm, got, l.diffID)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return nil
}

// errReader remembers the first error other than io.EOF its reader gave.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
