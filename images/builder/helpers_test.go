package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"
)

// entry is a tar entry of a test root.
type entry struct {
	name string
	typ  byte
	body string // content, or link target
	mode int64
}

var mtime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// tarOf returns a tar archive of entries, owned by the test's user.
func tarOf(t testing.TB, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, ModTime: mtime, Uid: os.Getuid(), Gid: os.Getgid(), Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
			if e.typ == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		switch e.typ {
		case tar.TypeReg:
			h.Size = int64(len(e.body))
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.body
		case tar.TypeChar:
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const (
	oldRelease = "6.1.0-9-test"
	newRelease = "6.1.0-10-test" // newer by version order, older by byte order
)

// baseRoot is a tiny merged-/usr root with two kernels and their module
// trees (each a squashfs.ko and a modules.dep), device nodes under /dev,
// a hard link, and files and folders for an upper OCI layer to delete.
func baseRoot() []entry {
	var es []entry
	d := func(n string) { es = append(es, entry{name: n, typ: tar.TypeDir}) }
	f := func(n, body string) { es = append(es, entry{name: n, typ: tar.TypeReg, body: body}) }
	d("./")
	d("./usr/")
	d("./usr/lib/")
	es = append(es, entry{name: "./lib", typ: tar.TypeSymlink, body: "usr/lib"})
	d("./boot/")
	d("./etc/")
	d("./dev/")
	es = append(es, entry{name: "./dev/null", typ: tar.TypeChar, mode: 0o666}, entry{name: "./dev/fd", typ: tar.TypeSymlink, body: "/proc/self/fd"})
	for _, rel := range []string{oldRelease, newRelease} {
		f("./boot/vmlinuz-"+rel, "MZ kernel "+rel)
		d("./usr/lib/modules/" + rel + "/")
		f("./usr/lib/modules/"+rel+"/kernel/fs/squashfs/squashfs.ko", "module of "+rel)
		f("./usr/lib/modules/"+rel+"/modules.dep", "kernel/fs/squashfs/squashfs.ko:\n")
	}
	es = append(es, entry{name: "./vmlinuz", typ: tar.TypeSymlink, body: "boot/vmlinuz-" + oldRelease})
	f("./etc/hostname", "moobi\n")
	es = append(es, entry{name: "./etc/hostname.link", typ: tar.TypeLink, body: "./etc/hostname"})
	es = append(es, entry{name: "./usr/bin/", typ: tar.TypeDir}, entry{name: "./usr/bin/tool", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755})
	f("./etc/old.conf", "deleted by the upper layer\n")
	d("./opt/")
	d("./opt/stuff/")
	f("./opt/stuff/a", "hidden by the opaque folder\n")
	d("./opt/stuff/sub/")
	f("./opt/stuff/sub/b", "hidden by the opaque folder\n")
	return es
}

// upperLayer deletes /etc/old.conf with a whiteout, makes /opt/stuff opaque
// (its own files come before the marker, as tar order allows) and adds files.
func upperLayer() []entry {
	return []entry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/.wh.old.conf", typ: tar.TypeReg},
		{name: "etc/new.conf", typ: tar.TypeReg, body: "added\n"},
		{name: "opt/stuff/", typ: tar.TypeDir},
		{name: "opt/stuff/sub/", typ: tar.TypeDir},
		{name: "opt/stuff/sub/c", typ: tar.TypeReg, body: "kept\n"},
		{name: "opt/stuff/.wh..wh..opq", typ: tar.TypeReg},
	}
}

func gz(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(b, nil)
}

// testImage is the two-layer image: baseRoot (gzip) under upperLayer (zstd).
func testImage(t testing.TB) v1.Image {
	t.Helper()
	layer := func(b []byte, c compression.Compression) v1.Layer {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithCompression(c))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	img, err := mutate.AppendLayers(empty.Image, layer(tarOf(t, baseRoot()), compression.GZip), layer(tarOf(t, upperLayer()), compression.ZStd))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeLayout writes img as an OCI image layout in dir.
func writeLayout(t testing.TB, dir string, img v1.Image) string {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeDockerArchive writes img as `docker save` does.
func writeDockerArchive(t testing.TB, path string, img v1.Image) string {
	t.Helper()
	tag, err := name.NewTag("moobi.test/root:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	return path
}

// tarDir writes the files of dir as a tar archive at path (an OCI archive
// when dir is a layout).
func tarDir(t testing.TB, dir, path string) string {
	t.Helper()
	var es []entry
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.IsDir() {
			if rel != "." {
				es = append(es, entry{name: rel + "/", typ: tar.TypeDir})
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, entry{name: rel, typ: tar.TypeReg, body: string(b)})
		return nil
	})
	if err := os.WriteFile(path, tarOf(t, es), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
