package catalog

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"moobi/lab"
)

var zstdMods = []fakeMod{
	{"kernel/drivers/nvme/host/nvme.ko.zst", []string{"kernel/drivers/nvme/host/nvme-core.ko.xz"}},
	{"kernel/drivers/nvme/host/nvme-core.ko.xz", nil},
}

// bootSet is what PackModules must pack from testMods (+ zstdMods).
var bootSet = []string{
	"kernel/crypto/crct10dif_common.ko",
	"kernel/drivers/block/virtio_blk.ko",
	"kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
	"kernel/drivers/net/net_failover.ko",
	"kernel/drivers/net/virtio_net.ko",
	"kernel/drivers/scsi/scsi_mod.ko",
	"kernel/drivers/scsi/sd_mod.ko",
	"kernel/drivers/virtio/virtio_mem.ko",
	"kernel/fs/overlayfs/overlay.ko",
	"kernel/fs/squashfs/squashfs.ko",
	"kernel/lib/crc-t10dif.ko.gz",
	"kernel/lib/zstd/zstd_decompress.ko",
	"kernel/net/core/failover.ko",
}

// pack runs PackModules on tree and checks the archive: the files are want
// (relative to the tree), with their folders, byte for byte; headers are
// deterministic; packing again gives the same bytes.
func pack(t *testing.T, tree string, want []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := PackModules(context.Background(), &buf, tree)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "lib/modules/" + filepath.Base(tree)
	wantNames := map[string]bool{"lib": true, "lib/modules": true, prefix: true}
	mods := 0
	for _, f := range want {
		if moduleExt(f) != "" {
			mods++
		}
		wantNames[prefix+"/"+f] = false
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			wantNames[prefix+"/"+d] = true
		}
	}
	if n != mods {
		t.Errorf("PackModules packed %d modules, want %d", n, mods)
	}
	es := readCpio(t, buf.Bytes())
	var got, order []string
	inos := map[uint32]bool{}
	for _, e := range es {
		order = append(order, e.name)
		isDir, ok := wantNames[e.name]
		if !ok {
			got = append(got, e.name)
			continue
		}
		delete(wantNames, e.name)
		wantMode, wantNlink := uint32(0o100644), uint32(1)
		if isDir {
			wantMode, wantNlink = 0o040755, 2
		} else if b, err := os.ReadFile(filepath.Join(tree, strings.TrimPrefix(e.name, prefix+"/"))); err != nil || !bytes.Equal(b, e.data) {
			t.Errorf("%s: archived content differs (%v)", e.name, err)
		}
		if e.mode != wantMode || e.nlink != wantNlink || e.uid != 0 || e.gid != 0 || e.mtime != 0 || e.ino == 0 || inos[e.ino] {
			t.Errorf("%s: header %+v", e.name, e)
		}
		inos[e.ino] = true
	}
	if got != nil || len(wantNames) != 0 {
		t.Errorf("unexpected entries %q; missing %v", got, wantNames)
	}
	if !sort.StringsAreSorted(order) {
		t.Errorf("entries not sorted: %q", order)
	}
	var again bytes.Buffer
	if _, err := PackModules(context.Background(), &again, tree); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("packing twice gave different archives (%v)", err)
	}
	return buf.Bytes()
}

var meta = []string{"modules.alias", "modules.builtin"}

func TestPackModulesDep(t *testing.T) {
	tree := makeModTree(t, t.TempDir(), "6.1.0-test", append(testMods, zstdMods...), true)
	want := append(append([]string{"modules.dep", "kernel/drivers/nvme/host/nvme.ko.zst", "kernel/drivers/nvme/host/nvme-core.ko.xz"}, meta...), bootSet...)
	pack(t, tree, want)
}

func TestPackModulesModinfo(t *testing.T) {
	// No modules.dep: dependencies come from .modinfo (crc-t10dif.ko.gz is gzip'd).
	tree := makeModTree(t, t.TempDir(), "6.1.0-test", testMods, false)
	pack(t, tree, append(meta, bootSet...))
}

func TestPackModulesWholeTree(t *testing.T) {
	// No modules.dep and a boot module whose .modinfo cannot be read (zstd):
	// dependencies are unknown, the whole tree is packed.
	mods := append(testMods, zstdMods...)
	tree := makeModTree(t, t.TempDir(), "6.1.0-test", mods, false)
	want := meta
	for _, m := range mods {
		want = append(want, m.rel)
	}
	pack(t, tree, want)
}

func TestPackModulesErrors(t *testing.T) {
	dir := t.TempDir()
	broken := append([]fakeMod{{"kernel/fs/squashfs/squashfs.ko", []string{"kernel/lib/lz4.ko"}}}, testMods[1:3]...)
	for _, withDep := range []bool{true, false} {
		tree := makeModTree(t, filepath.Join(dir, map[bool]string{true: "dep", false: "modinfo"}[withDep]), "6.1.0-test", broken, withDep)
		if _, err := PackModules(context.Background(), &bytes.Buffer{}, tree); err == nil || !strings.Contains(err.Error(), "lz4") {
			t.Errorf("withDep %v: a missing dependency gave %v", withDep, err)
		}
	}
	writeFile(t, filepath.Join(dir, "file"), nil)
	for _, bad := range []string{filepath.Join(dir, "file"), filepath.Join(dir, "missing"), "/"} {
		if _, err := PackModules(context.Background(), &bytes.Buffer{}, bad); err == nil {
			t.Errorf("PackModules(%s) succeeded", bad)
		}
	}
}

// TestPackModulesRealTree packs the module tree of the lab's Debian kernel
// (lab.Kernel). With the kernel not yet cached it fetches it, which needs
// root and apt: it skips without them, and fails instead under
// MOOBI_REQUIRE_ROOT_TESTS (see lab.RequireRoot).
func TestPackModulesRealTree(t *testing.T) {
	tree := realModuleTree(t)
	depFile, err := os.Open(filepath.Join(tree, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	dep, err := parseModulesDep(depFile, filepath.Base(tree))
	depFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := PackModules(context.Background(), &buf, tree)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "lib/modules/" + filepath.Base(tree) + "/"
	packed := map[string][]byte{}
	for _, e := range readCpio(t, buf.Bytes()) {
		if e.mode&0o170000 == 0o100000 {
			packed[strings.TrimPrefix(e.name, prefix)] = e.data
		}
	}
	// Every boot module is packed with its dependencies, and every packed
	// module is a boot module or the dependency of a packed one.
	needed := map[string]bool{}
	mods, raw := 0, 0
	for rel, data := range packed {
		if moduleExt(rel) == "" {
			continue
		}
		mods++
		raw += len(data)
		for _, d := range dep[rel] {
			needed[d] = true
			if packed[d] == nil {
				t.Errorf("%s packed without its dependency %s", rel, d)
			}
		}
		if b, err := os.ReadFile(filepath.Join(tree, rel)); err != nil || !bytes.Equal(b, data) {
			t.Errorf("%s: archived content differs (%v)", rel, err)
		}
	}
	all, _, err := scanModules(tree)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(dep) {
		t.Errorf("tree has %d modules, modules.dep %d", len(all), len(dep))
	}
	for rel := range all {
		if isBootModule(rel) && packed[rel] == nil {
			t.Errorf("boot module %s not packed", rel)
		}
	}
	for rel := range packed {
		if moduleExt(rel) != "" && !isBootModule(rel) && !needed[rel] {
			t.Errorf("%s packed but not needed", rel)
		}
	}
	for _, m := range []string{"kernel/drivers/net/virtio_net.ko", "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/scsi/sd_mod.ko",
		"kernel/drivers/scsi/virtio_scsi.ko", "kernel/drivers/ata/libata.ko", "kernel/fs/squashfs/squashfs.ko",
		"kernel/fs/overlayfs/overlay.ko", "kernel/net/core/failover.ko", "modules.dep", "modules.alias", "modules.builtin"} {
		if _, ok := packed[m]; !ok {
			t.Errorf("%s not packed", m)
		}
	}
	if n != mods || n >= len(dep) {
		t.Errorf("PackModules says %d modules; archive has %d, tree %d", n, mods, len(dep))
	}
	t.Logf("real tree %s: %d of %d modules packed (%d bytes of modules), %d bytes gzip'd", filepath.Base(tree), n, len(dep), raw, buf.Len())
}

// realModuleTree returns the module tree of the lab's cached kernel,
// fetching the kernel first if the cache has none.
func realModuleTree(t *testing.T) string {
	t.Helper()
	cache := lab.TestCacheDir(t)
	if tree, err := lab.KernelModulesDir(cache); err == nil {
		if _, err := os.Stat(filepath.Join(tree, "modules.dep")); err == nil {
			return tree
		}
	}
	lab.RequireRoot(t, "apt-get", "apt-cache", "dpkg", "depmod")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := lab.Kernel(ctx, cache); err != nil {
		t.Fatal(err)
	}
	tree, err := lab.KernelModulesDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}
