package rootfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Progress is what Unpack has done so far; read it from another goroutine
// while Unpack runs.
type Progress struct {
	Read  atomic.Int64 // bytes read from the source (compressed, as stored)
	Total atomic.Int64 // bytes Read will reach, once known
}

// Result says what Unpack unpacked.
type Result struct {
	Stats
	Layers      int         // OCI layers applied (0 for a tarball)
	Compression Compression // a tarball's compression
	SourceBytes int64       // bytes read from the source
}

// Unpack extracts the root filesystem of src (not a Folder) into the
// existing empty folder stage. On error stage holds a partial root: the
// caller removes it.
func Unpack(ctx context.Context, src Source, stage string, p *Progress) (Result, error) {
	if p == nil {
		p = &Progress{}
	}
	x := NewExtractor(stage)
	var res Result
	var err error
	switch src.Kind {
	case Tarball:
		res.Compression, err = unpackTarball(ctx, x, src.Path, p)
	case OCILayout:
		res.Layers, err = unpackOCI(ctx, x, dirStore(src.Path), p)
	case OCIArchive:
		var s *tarStore
		if s, err = openTarStore(src.Path); err == nil {
			res.Layers, err = unpackOCI(ctx, x, s, p)
			s.Close()
		}
	case DockerArchive:
		res.Layers, err = unpackDocker(ctx, x, src.Path, p)
	default:
		err = fmt.Errorf("cannot unpack a %s", src.Kind)
	}
	if err == nil {
		err = x.Finish()
	}
	res.Stats, res.SourceBytes = x.Stats, p.Read.Load()
	if err != nil {
		return res, fmt.Errorf("%s: %w", src, err)
	}
	return res, nil
}

func unpackTarball(ctx context.Context, x *Extractor, p string, prog *Progress) (Compression, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		prog.Total.Store(fi.Size())
	}
	tr, c, err := decompress(progressReader{f, &prog.Read})
	if err != nil {
		return "", err
	}
	defer tr.Close()
	if err := x.Tarball(ctx, tr); err != nil {
		return c, err
	}
	_, err = io.Copy(io.Discard, tr) // the end of the archive: a truncated or corrupt one fails here
	return c, err
}

func unpackOCI(ctx context.Context, x *Extractor, s blobStore, p *Progress) (int, error) {
	layers, err := ociLayers(s)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range layers {
		total += l.desc.Size
	}
	p.Total.Store(total)
	for i, l := range layers {
		label := fmt.Sprintf("layer %d of %d (%s)", i+1, len(layers), l.desc.Digest)
		if err := applyLayer(ctx, x, l, label, &p.Read); err != nil {
			return i, err
		}
	}
	return len(layers), nil
}

// unpackDocker applies the layers of a `docker save` archive; each layer's
// tar stream is checked against the diff_id of the image config.
func unpackDocker(ctx context.Context, x *Extractor, p string, prog *Progress) (int, error) {
	if fi, err := os.Stat(p); err != nil {
		return 0, err
	} else {
		prog.Total.Store(fi.Size())
	}
	img, err := tarball.ImageFromPath(p, nil)
	if err != nil {
		return 0, fmt.Errorf("not a docker archive with one image: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return 0, fmt.Errorf("image config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return 0, fmt.Errorf("%d layers but %d diff_ids in the image config", len(layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range layers {
		diffID := cfg.RootFS.DiffIDs[i]
		label := fmt.Sprintf("layer %d of %d (%s)", i+1, len(layers), diffID)
		ol := ociLayer{diffID: diffID, open: l.Uncompressed}
		if err := applyLayer(ctx, x, ol, label, &prog.Read); err != nil {
			return i, err
		}
	}
	return len(layers), nil
}
