package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/images/catalog"
	"moobi/images/rootfs"
	"moobi/lab"
)

// testBuild is a catalog in a data dir, with image "root" built once (v1)
// from a plain tarball of baseRoot.
type testBuild struct {
	data string
	cat  *catalog.Catalog
	log  bytes.Buffer
}

func newTestBuild(t *testing.T) *testBuild {
	t.Helper()
	lab.RequireRoot(t, "mksquashfs", "unsquashfs")
	tb := &testBuild{data: t.TempDir()}
	var err error
	if tb.cat, err = catalog.Open(filepath.Join(tb.data, "images")); err != nil {
		t.Fatal(err)
	}
	return tb
}

func (tb *testBuild) build(t *testing.T, source string) (*Report, error) {
	t.Helper()
	src, err := rootfs.ParseSource(source)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tb.log.Reset()
	return Build(ctx, tb.cat, "root", Options{Source: src, WorkDir: tb.data, Log: &tb.log})
}

// listSquashfs returns the paths in the squashfs of m (unsquashfs -l).
func listSquashfs(t *testing.T, tb *testBuild, m *catalog.Manifest) map[string]bool {
	t.Helper()
	p, err := tb.cat.Path(m.Name, m.Version, catalog.FileRootfs)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("unsquashfs", "-l", "-d", "", p).Output()
	if err != nil {
		t.Fatalf("unsquashfs -l: %v", err)
	}
	paths := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "/") || l == "" {
			paths[l] = true
		}
	}
	return paths
}

// checkBuilt checks a published build of baseRoot (with upperLayer if oci).
func checkBuilt(t *testing.T, tb *testBuild, r *Report, oci bool) {
	t.Helper()
	m := r.Manifest
	if cur, err := tb.cat.Current("root"); err != nil || cur.Version != m.Version {
		t.Fatalf("current is %v (%v), want %s", cur, err, m.Version)
	}
	kernel, _ := tb.cat.Path("root", m.Version, catalog.FileKernel)
	if b, _ := os.ReadFile(kernel); string(b) != "MZ kernel "+newRelease {
		t.Errorf("published kernel %q, want the newest, %s", b, newRelease)
	}
	if r.Kernel.Release != newRelease || len(r.Kernel.Others) != 1 || !strings.Contains(tb.log.String(), "took the newest, "+newRelease) {
		t.Errorf("kernel %+v; log:\n%s", r.Kernel, tb.log.String())
	}
	if !strings.HasSuffix(r.Kernel.Modules, "usr/lib/modules/"+newRelease) || m.Files[catalog.FileModules].Size == 0 {
		t.Errorf("modules %s, archive %+v", r.Kernel.Modules, m.Files[catalog.FileModules])
	}
	paths := listSquashfs(t, tb, m)
	want := []string{"/etc/hostname", "/etc/hostname.link", "/usr/bin/tool", "/boot/vmlinuz-" + newRelease, "/lib",
		"/usr/lib/modules/" + newRelease + "/kernel/fs/squashfs/squashfs.ko", "/dev", "/opt/stuff/sub"}
	gone := []string{"/dev/null", "/dev/fd"}
	if oci {
		want = append(want, "/etc/new.conf", "/opt/stuff/sub/c")
		gone = append(gone, "/etc/old.conf", "/opt/stuff/a", "/opt/stuff/sub/b")
	} else {
		want = append(want, "/etc/old.conf", "/opt/stuff/a", "/opt/stuff/sub/b")
	}
	for _, p := range want {
		if !paths[p] {
			t.Errorf("squashfs lacks %s", p)
		}
	}
	for _, p := range gone {
		if paths[p] {
			t.Errorf("squashfs has %s", p)
		}
	}
	if r.Unpack.DevSkipped != 2 || !strings.Contains(tb.log.String(), "skipped 2 entries under /dev/") {
		t.Errorf("skipped %d under /dev; log:\n%s", r.Unpack.DevSkipped, tb.log.String())
	}
	if r.SquashfsBytes == 0 || r.SourceBytes == 0 || r.RootBytes == 0 {
		t.Errorf("sizes: %+v", r)
	}
	ents, _ := filepath.Glob(filepath.Join(tb.data, ".image-build-*"))
	if len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestBuildSources(t *testing.T) {
	tb := newTestBuild(t)
	dir := t.TempDir()
	plain := tarOf(t, baseRoot())
	img := testImage(t)
	layoutDir := writeLayout(t, filepath.Join(dir, "layout"), img)
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	x := rootfs.NewExtractor(folder)
	if err := x.Tarball(context.Background(), bytes.NewReader(plain)); err != nil || x.Finish() != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, source string
		oci          bool
	}{
		{"tar", write("root.tar", plain), false},
		{"gzip", write("root.tgz", gz(t, plain)), false},
		{"zstd", write("root.tar.zst", zst(t, plain)), false},
		{"zstd named .tar.gz", write("lying.tar.gz", zst(t, plain)), false},
		{"oci layout", "oci:" + layoutDir, true},
		{"oci archive", "oci-archive:" + tarDir(t, layoutDir, filepath.Join(dir, "oci.tar")), true},
		{"docker archive", "docker-archive:" + writeDockerArchive(t, filepath.Join(dir, "docker.tar"), img), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r, err := tb.build(t, tc.source)
			if err != nil {
				t.Fatalf("%v\nlog:\n%s", err, tb.log.String())
			}
			checkBuilt(t, tb, r, tc.oci)
			t.Logf("%s: %s in %s", tc.source, r.Manifest.Version, time.Since(start).Round(time.Millisecond))
		})
	}
	// A folder is used as it is: /dev's nodes were never there.
	r, err := tb.build(t, folder)
	if err != nil {
		t.Fatal(err)
	}
	paths := listSquashfs(t, tb, r.Manifest)
	if !paths["/etc/old.conf"] || !paths["/usr/lib/modules/"+newRelease+"/modules.dep"] || r.Kernel.Release != newRelease {
		t.Errorf("folder build: kernel %s, paths %v", r.Kernel.Release, paths)
	}
}

// TestBuildRefuses: bad sources fail with an error naming what is wrong,
// publish nothing and leave v1 current.
func TestBuildRefuses(t *testing.T) {
	tb := newTestBuild(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar")
	os.WriteFile(good, tarOf(t, baseRoot()), 0o644)
	if _, err := tb.build(t, good); err != nil {
		t.Fatal(err)
	}
	withBase := func(es ...entry) []entry { return append(baseRoot(), es...) }
	bad := func(name string, es []entry) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, gz(t, tarOf(t, es)), 0o644)
		return p
	}
	var noKernel []entry
	for _, e := range baseRoot() {
		if !strings.Contains(e.name, "vmlinuz") {
			noKernel = append(noKernel, e)
		}
	}
	img := testImage(t)
	layoutDir := writeLayout(t, filepath.Join(dir, "layout"), img)
	ociArchive := tarDir(t, layoutDir, filepath.Join(dir, "oci.tar"))
	corruptOCI := corrupt(t, ociArchive, filepath.Join(dir, "oci-corrupt.tar"), "hidden by the opaque folder", true)
	docker := writeDockerArchive(t, filepath.Join(dir, "docker.tar"), img)
	corruptDocker := corrupt(t, docker, filepath.Join(dir, "docker-corrupt.tar"), "", true)
	for _, tc := range []struct{ name, source, want string }{
		{"absolute path", bad("abs.tgz", withBase(entry{name: "/etc/passwd", typ: tar.TypeReg, body: "x"})), `entry "/etc/passwd": unsafe entry: "/etc/passwd" is an absolute path`},
		{"dot-dot", bad("dotdot.tgz", withBase(entry{name: "etc/../../escape", typ: tar.TypeReg, body: "x"})), `entry "etc/../../escape": unsafe entry: "etc/../../escape" climbs out of the root`},
		{"device outside /dev", bad("dev.tgz", withBase(entry{name: "etc/sda", typ: tar.TypeChar})), `entry "etc/sda": unsafe entry: a device node (1:3) outside /dev/`},
		{"link followed out", bad("link.tgz", withBase(entry{name: "etc/up", typ: tar.TypeSymlink, body: "../.."}, entry{name: "etc/up/escape", typ: tar.TypeReg})), `entry "etc/up/escape": unsafe entry: link /etc/up -> ../.. points outside the root`},
		{"hard link out", bad("hard.tgz", withBase(entry{name: "etc/shadow2", typ: tar.TypeLink, body: "../etc/shadow"})), `entry "etc/shadow2": hard link: unsafe entry`},
		{"no kernel", bad("nokernel.tgz", noKernel), "no kernel in the root (no /boot/vmlinuz-*)"},
		{"not a tarball", writeText(t, filepath.Join(dir, "notes.tar")), "not a tar archive"},
		{"corrupt oci blob", "oci-archive:" + corruptOCI, "blob is corrupt"},
		{"corrupt docker layer", "docker-archive:" + corruptDocker, "layer is corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tb.build(t, tc.source)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one saying %q\nlog:\n%s", err, tc.want, tb.log.String())
			}
			t.Logf("%v", err)
			if cur, err := tb.cat.Current("root"); err != nil || cur.Version != "v1" {
				t.Errorf("current is %+v (%v), want v1", cur, err)
			}
			if vs, _ := filepath.Glob(filepath.Join(tb.data, "images", "root", "v*")); len(vs) != 1 {
				t.Errorf("versions: %v", vs)
			}
			if left, _ := filepath.Glob(filepath.Join(tb.data, ".image-build-*")); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func writeText(t *testing.T, p string) string {
	os.WriteFile(p, []byte(strings.Repeat("not a tarball\n", 100)), 0o644)
	return p
}

// corrupt copies the archive src to dst with one byte changed: in the
// gzip'd base layer (decompressed=true), or where marker is.
func corrupt(t *testing.T, src, dst, marker string, decompressed bool) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(marker))
	if decompressed {
		// The base layer is gzip'd: change a byte in the middle of the
		// first gzip stream of the archive.
		i = bytes.Index(b, []byte{0x1f, 0x8b, 8}) + 200
	}
	if i < 0 {
		t.Fatalf("%s: no %q", src, marker)
	}
	b[i] ^= 0xff
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}
