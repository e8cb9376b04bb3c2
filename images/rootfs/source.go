package rootfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Kind is the kind of a root filesystem source.
type Kind string

// The kinds of source.
const (
	Folder        Kind = "folder"         // a root filesystem folder, used as it is
	Tarball       Kind = "tarball"        // a tar archive, plain, gzip'd or zstd'd
	OCILayout     Kind = "oci"            // oci:DIR, an OCI image layout folder
	OCIArchive    Kind = "oci-archive"    // oci-archive:FILE, an OCI image layout in a tar archive
	DockerArchive Kind = "docker-archive" // docker-archive:FILE, what `docker save` and `podman save` write
)

// Source is a parsed SOURCE argument.
type Source struct {
	Kind Kind
	Path string
}

func (s Source) String() string {
	if s.Kind == Folder || s.Kind == Tarball {
		return s.Path
	}
	return string(s.Kind) + ":" + s.Path
}

// ParseSource interprets a SOURCE argument: "oci:DIR", "oci-archive:FILE",
// "docker-archive:FILE", else a folder or a tarball (told apart by a stat;
// a tarball's format is told by its first bytes, not its name).
func ParseSource(arg string) (Source, error) {
	for _, k := range []Kind{OCILayout, OCIArchive, DockerArchive} {
		if p, ok := strings.CutPrefix(arg, string(k)+":"); ok {
			if p == "" {
				return Source{}, fmt.Errorf("source %q: no path after %q", arg, string(k)+":")
			}
			return Source{Kind: k, Path: p}, nil
		}
	}
	fi, err := os.Stat(arg)
	if err != nil {
		return Source{}, fmt.Errorf("source: %w", err)
	}
	switch {
	case fi.IsDir():
		return Source{Kind: Folder, Path: arg}, nil
	case fi.Mode().IsRegular():
		return Source{Kind: Tarball, Path: arg}, nil
	}
	return Source{}, fmt.Errorf("source %s is neither a folder nor a file", arg)
}

// Compression is how a tarball is compressed.
type Compression string

// The compressions a tarball may have.
const (
	None Compression = "tar"
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// DetectCompression tells a tarball's compression from its first bytes (at
// least 262 of them for a plain tar archive). It refuses what it cannot read.
func DetectCompression(head []byte) (Compression, error) {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd, nil
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return None, nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "", errors.New("xz-compressed: decompress it first (xz -d), or use gzip or zstd")
	case bytes.HasPrefix(head, []byte("BZh")):
		return "", errors.New("bzip2-compressed: decompress it first (bunzip2), or use gzip or zstd")
	}
	return "", fmt.Errorf("not a tar archive, nor a gzip'd or zstd'd one (it starts with %q)", head[:min(len(head), 8)])
}

// decompress returns the tar stream of the (possibly compressed) tarball r.
func decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", err
	}
	c, err := DetectCompression(head)
	if err != nil {
		return nil, "", err
	}
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, err
		}
		return zr, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, c, err
		}
		return zr.IOReadCloser(), c, nil
	}
	return io.NopCloser(br), c, nil
}
