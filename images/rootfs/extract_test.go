package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func tarOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		h.Uid, h.Gid, h.Format = os.Getuid(), os.Getgid(), tar.FormatPAX
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Linkname))
		}
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, "" // Linkname carries a file's body here
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return b.Bytes()
}

func TestExtractAttributes(t *testing.T) {
	root := t.TempDir()
	x := NewExtractor(root)
	data := tarOf(t,
		&tar.Header{Name: "ro/", Typeflag: tar.TypeDir, Mode: 0o555},
		&tar.Header{Name: "ro/tool", Typeflag: tar.TypeReg, Mode: 0o4755, Linkname: "#!/bin/sh\n",
			PAXRecords: map[string]string{"SCHILY.xattr.user.moobi": "yes"}},
		&tar.Header{Name: "ro/.wh.gone", Typeflag: tar.TypeReg, Mode: 0o644}, // a plain tarball: just a file
		&tar.Header{Name: "ro/link", Typeflag: tar.TypeSymlink, Linkname: "/nonexistent"},
		&tar.Header{Name: "ro/fifo", Typeflag: tar.TypeFifo, Mode: 0o600},
	)
	if err := x.Tarball(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := x.Finish(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{"ro": os.ModeDir | 0o555, "ro/tool": os.ModeSetuid | 0o755, "ro/.wh.gone": 0o644,
		"ro/link": os.ModeSymlink | 0o777, "ro/fifo": os.ModeNamedPipe | 0o600} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(root, "ro/tool"), "user.moobi", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("xattr user.moobi = %q, %v", buf[:n], err)
	}
	if x.Files != 2 || x.Entries != 5 {
		t.Errorf("stats %+v", x.Stats)
	}
}

func TestExtractLayers(t *testing.T) {
	root := t.TempDir()
	x := NewExtractor(root)
	ctx := context.Background()
	lower := tarOf(t,
		&tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "a/old", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "old"},
		&tar.Header{Name: "a/sub/x", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"},
		&tar.Header{Name: "b", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "b"},
		&tar.Header{Name: "c/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "c/keep", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "keep"},
	)
	upper := tarOf(t,
		&tar.Header{Name: "a/sub/y", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "y"}, // before the marker
		&tar.Header{Name: "a/.wh..wh..opq", Typeflag: tar.TypeReg},
		&tar.Header{Name: ".wh.b", Typeflag: tar.TypeReg},
		&tar.Header{Name: "c/.wh.missing", Typeflag: tar.TypeReg},
		&tar.Header{Name: "c/keep", Typeflag: tar.TypeSymlink, Linkname: "elsewhere"}, // replaces a file
	)
	for _, l := range [][]byte{lower, upper} {
		if err := x.Layer(ctx, bytes.NewReader(l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Finish(); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(root, p)
		got = append(got, rel)
		return nil
	})
	if want := ". a a/sub a/sub/y c c/keep"; strings.Join(got, " ") != want {
		t.Errorf("after the layers: %q, want %q", strings.Join(got, " "), want)
	}
	if x.Whiteouts != 3 {
		t.Errorf("whiteouts %d", x.Whiteouts)
	}
}

func TestDetectCompression(t *testing.T) {
	tarHead := make([]byte, 512)
	copy(tarHead[257:], "ustar\x0000")
	for _, tc := range []struct {
		head []byte
		want Compression
		err  string
	}{
		{tarHead, None, ""},
		{[]byte{0x1f, 0x8b, 8, 0}, Gzip, ""},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, Zstd, ""},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "", "xz-compressed"},
		{[]byte("BZh91AY"), "", "bzip2"},
		{[]byte("hello"), "", "not a tar archive"},
	} {
		got, err := DetectCompression(tc.head)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("DetectCompression(%q) = %q, %v; want %q, %q", tc.head[:min(8, len(tc.head))], got, err, tc.want, tc.err)
		}
	}
}

func TestParseSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "root.tar")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		arg  string
		want Source
		err  string
	}{
		{dir, Source{Folder, dir}, ""},
		{file, Source{Tarball, file}, ""},
		{"oci:" + dir, Source{OCILayout, dir}, ""},
		{"oci-archive:x.tar", Source{OCIArchive, "x.tar"}, ""},
		{"docker-archive:x.tar", Source{DockerArchive, "x.tar"}, ""},
		{"oci:", Source{}, "no path"},
		{filepath.Join(dir, "missing"), Source{}, "no such file"},
		{"/dev/null", Source{}, "neither a folder nor a file"},
	} {
		got, err := ParseSource(tc.arg)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseSource(%q) = %+v, %v; want %+v, %q", tc.arg, got, err, tc.want, tc.err)
		}
	}
}

// A later layer that puts a symlink where a folder was must not lead Finish
// to set the old folder's children's attributes through the link, on the
// host.
func TestExtractLayersSymlinkOverFolder(t *testing.T) {
	dir := func(name string, mode int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}
	}
	link := func(name, target string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
	}
	wh := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	for _, tc := range []struct {
		name   string
		layers func(victim string) [][]*tar.Header
		link   string // the symlink the last layer leaves in the root
	}{
		{"replaced", func(v string) [][]*tar.Header {
			return [][]*tar.Header{{dir("x/", 0o755), dir("x/sub/", 0o777)}, {link("x", v)}}
		}, "x"},
		{"whited out", func(v string) [][]*tar.Header {
			return [][]*tar.Header{{dir("x/", 0o755), dir("x/sub/", 0o777)}, {wh(".wh.x")}, {link("x", v)}}
		}, "x"},
		{"opaque", func(v string) [][]*tar.Header {
			return [][]*tar.Header{{dir("d/", 0o755), dir("d/x/", 0o755), dir("d/x/sub/", 0o777)},
				{wh("d/.wh..wh..opq"), link("d/x", v)}}
		}, "d/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, victim := t.TempDir(), t.TempDir()
			sub := filepath.Join(victim, "sub")
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			x := NewExtractor(root)
			for i, l := range tc.layers(victim) {
				if err := x.Layer(context.Background(), bytes.NewReader(tarOf(t, l...))); err != nil {
					t.Fatalf("layer %d: %v", i+1, err)
				}
			}
			for k := range x.dirs {
				if strings.HasPrefix(k, tc.link+"/") {
					t.Errorf("attributes still recorded for /%s, under the link /%s", k, tc.link)
				}
			}
			if err := x.Finish(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(sub); err != nil || fi.Mode() != os.ModeDir|0o755 {
				t.Errorf("host folder %s: mode %v (%v), want %v", sub, fi.Mode(), err, os.ModeDir|0o755)
			}
			if got, err := os.Readlink(filepath.Join(root, tc.link)); err != nil || got != victim {
				t.Errorf("/%s -> %q (%v), want the link to %q", tc.link, got, err, victim)
			}
		})
	}
}
