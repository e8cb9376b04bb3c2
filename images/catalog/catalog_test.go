package catalog

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

var testMods = []fakeMod{
	{"kernel/drivers/net/virtio_net.ko", []string{"kernel/drivers/net/net_failover.ko", "kernel/net/core/failover.ko"}},
	{"kernel/drivers/net/net_failover.ko", []string{"kernel/net/core/failover.ko"}},
	{"kernel/net/core/failover.ko", nil},
	{"kernel/drivers/net/veth.ko", nil},
	{"kernel/drivers/net/ethernet/intel/e1000/e1000.ko", nil},
	{"kernel/drivers/virtio/virtio_mem.ko", nil},
	{"kernel/drivers/block/virtio_blk.ko", nil},
	{"kernel/drivers/scsi/sd_mod.ko", []string{"kernel/lib/crc-t10dif.ko.gz", "kernel/drivers/scsi/scsi_mod.ko"}},
	{"kernel/drivers/scsi/scsi_mod.ko", nil},
	{"kernel/lib/crc-t10dif.ko.gz", []string{"kernel/crypto/crct10dif_common.ko"}},
	{"kernel/crypto/crct10dif_common.ko", nil},
	{"kernel/fs/squashfs/squashfs.ko", []string{"kernel/lib/zstd/zstd_decompress.ko"}},
	{"kernel/lib/zstd/zstd_decompress.ko", nil},
	{"kernel/fs/overlayfs/overlay.ko", nil},
	{"kernel/sound/core/snd.ko", nil},
	{"kernel/drivers/gpu/drm/drm.ko", []string{"kernel/drivers/video/fbdev.ko"}},
	{"kernel/drivers/video/fbdev.ko", nil},
}

func TestPublishAndRead(t *testing.T) {
	dir := t.TempDir()
	src := makeSources(t, dir)
	src.Modules = makeModTree(t, filepath.Join(dir, "lib/modules"), "6.1.0-test", testMods, true)
	c, err := Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	o := PublishOptions{Announce: "http://10.99.0.1:6969/announce", WebSeed: "http://10.99.0.1:8080/images/{name}/{version}/", Progress: &read}
	m, err := c.Publish(context.Background(), "debian", src, o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "debian" || m.Version != "v1" {
		t.Fatalf("published %s %s", m.Name, m.Version)
	}
	if got, want := read.Load(), 2*m.Files[FileRootfs].Size; got != want {
		t.Errorf("Progress counted %d bytes, want %d (the rootfs read twice)", got, want)
	}
	for file, want := range map[string]FileInfo{FileKernel: fileSum(t, src.Kernel), FileRootfs: fileSum(t, src.Rootfs)} {
		if m.Files[file] != want {
			t.Errorf("%s: manifest %+v, source %+v", file, m.Files[file], want)
		}
	}
	if len(m.Files) != 3 || m.Files[FileModules].Size == 0 {
		t.Errorf("files %+v", m.Files)
	}
	for _, v := range []string{"v1", Current} {
		got := checkVersion(t, c, "debian", v)
		if !reflect.DeepEqual(got, m) {
			t.Errorf("Manifest(%s) = %+v, Publish returned %+v", v, got, m)
		}
	}
	if cur, err := c.Current("debian"); err != nil || !reflect.DeepEqual(cur, m) {
		t.Errorf("Current = %+v, %v", cur, err)
	}
	mi, err := c.MetaInfo("debian", Current)
	if err != nil {
		t.Fatal(err)
	}
	if mi.Announce != o.Announce || !reflect.DeepEqual([]string(mi.UrlList), []string{"http://10.99.0.1:8080/images/debian/v1/"}) {
		t.Errorf("torrent announce %q url-list %q", mi.Announce, mi.UrlList)
	}
	imgs, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "debian" || imgs[0].Current != "v1" || len(imgs[0].Versions) != 1 || !reflect.DeepEqual(imgs[0].Versions[0], m) {
		t.Errorf("List = %+v", imgs)
	}
	p, err := c.Path("debian", Current, FileModules)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	names := cpioNames(readCpio(t, b))
	if !contains(names, "lib/modules/6.1.0-test/kernel/drivers/net/virtio_net.ko") || contains(names, "lib/modules/6.1.0-test/kernel/sound/core/snd.ko") {
		t.Errorf("modules archive: %q", names)
	}

	// Without announce, web seed and modules, the torrent has no such keys.
	m2, err := c.Publish(context.Background(), "debian", Sources{Kernel: src.Kernel, Rootfs: src.Rootfs}, PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, c, "debian", Current)
	if mi, err := c.MetaInfo("debian", m2.Version); err != nil || mi.Announce != "" || mi.UrlList != nil {
		t.Errorf("torrent %+v, %v", mi, err)
	}
	if _, err := c.Path("debian", m2.Version, FileModules); !errors.Is(err, ErrNotFound) {
		t.Errorf("Path(modules) of a version without modules: %v", err)
	}
	if m2.InfoHash != m.InfoHash {
		t.Errorf("same rootfs, different infohash: the announce and url-list must stay out of the info dict")
	}
	if got := dotEntries(t, filepath.Join(c.Root, "debian")); got != nil {
		t.Errorf("leftovers %q", got)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestAutoVersion(t *testing.T) {
	dir := t.TempDir()
	src := makeSources(t, dir)
	c, err := Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ version, want string }{
		{"", "v1"}, {"", "v2"}, {"v9", "v9"}, {"", "v10"}, {"2024.06.01", "2024.06.01"}, {"v011", "v011"}, {"", "v11"},
	} {
		m, err := c.Publish(context.Background(), "img", src, PublishOptions{Version: tc.version, Keep: 100})
		if err != nil {
			t.Fatal(err)
		}
		if m.Version != tc.want {
			t.Errorf("publish %d (%q): version %s, want %s", i, tc.version, m.Version, tc.want)
		}
		if cur, err := c.Current("img"); err != nil || cur.Version != tc.want {
			t.Errorf("current %+v, %v", cur, err)
		}
	}
	want := []string{"v1", "v2", "v9", "v10", "2024.06.01", "v011", "v11"}
	if got := versionNames(t, c, "img"); !reflect.DeepEqual(got, want) {
		t.Errorf("versions %q, want %q (oldest first)", got, want)
	}
}

func TestKeep(t *testing.T) {
	dir := t.TempDir()
	src := makeSources(t, dir)
	c, err := Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(keep int) {
		t.Helper()
		if _, err := c.Publish(context.Background(), "img", src, PublishOptions{Keep: keep}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(cur string, want ...string) {
		t.Helper()
		if got := versionNames(t, c, "img"); !reflect.DeepEqual(got, want) {
			t.Errorf("versions %q, want %q", got, want)
		}
		if m := checkVersion(t, c, "img", Current); m.Version != cur {
			t.Errorf("current %s, want %s", m.Version, cur)
		}
		for v := range 12 {
			name := "v" + strconv.Itoa(v)
			_, err := os.Stat(filepath.Join(c.Root, "img", name))
			if contains(want, name) != (err == nil) {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	for range 5 {
		publish(0) // DefaultKeep
	}
	check("v5", "v3", "v4", "v5")

	// A rolled-back current version survives pruning though older than keep.
	if err := c.SetCurrent("img", "v3"); err != nil {
		t.Fatal(err)
	}
	removed, err := c.Prune("img", 1)
	if err != nil || !reflect.DeepEqual(removed, []string{"v4"}) {
		t.Errorf("Prune = %q, %v", removed, err)
	}
	check("v3", "v3", "v5")
	publish(2)
	check("v6", "v5", "v6")
	publish(1)
	check("v7", "v7")
	if got := dotEntries(t, filepath.Join(c.Root, "img")); got != nil {
		t.Errorf("leftovers %q", got)
	}
	if err := c.SetCurrent("img", "v6"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetCurrent(pruned version): %v", err)
	}
}

func TestPublishRefuses(t *testing.T) {
	dir := t.TempDir()
	src := makeSources(t, dir)
	c, err := Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(context.Background(), "img", src, PublishOptions{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	notSquash := filepath.Join(dir, "root.ext4")
	writeRandom(t, notSquash, "\x53\xef", 1<<20)
	empty := filepath.Join(dir, "empty")
	writeRandom(t, empty, "", 0)
	missing := filepath.Join(dir, "missing")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		what    string
		name    string
		src     Sources
		o       PublishOptions
		ctx     context.Context
		wantErr error
	}{
		{"not squashfs", "img", Sources{Kernel: src.Kernel, Rootfs: notSquash}, PublishOptions{}, nil, ErrNotSquashfs},
		{"empty rootfs", "img", Sources{Kernel: src.Kernel, Rootfs: empty}, PublishOptions{}, nil, ErrNotSquashfs},
		{"rootfs is a folder", "img", Sources{Kernel: src.Kernel, Rootfs: dir}, PublishOptions{}, nil, nil},
		{"missing kernel", "img", Sources{Kernel: missing, Rootfs: src.Rootfs}, PublishOptions{}, nil, fs.ErrNotExist},
		{"missing rootfs", "img", Sources{Kernel: src.Kernel, Rootfs: missing}, PublishOptions{}, nil, fs.ErrNotExist},
		{"missing modules", "img", Sources{Kernel: src.Kernel, Rootfs: src.Rootfs, Modules: missing}, PublishOptions{}, nil, fs.ErrNotExist},
		{"no kernel", "img", Sources{Rootfs: src.Rootfs}, PublishOptions{}, nil, nil},
		{"duplicate version", "img", src, PublishOptions{Version: "v1"}, nil, ErrExists},
		{"version current", "img", src, PublishOptions{Version: "current"}, nil, ErrBadName},
		{"version ..", "img", src, PublishOptions{Version: ".."}, nil, ErrBadName},
		{"version a/b", "img", src, PublishOptions{Version: "a/b"}, nil, ErrBadName},
		{"name ..", "..", src, PublishOptions{}, nil, ErrBadName},
		{"name with /", "a/b", src, PublishOptions{}, nil, ErrBadName},
		{"hidden name", ".img", src, PublishOptions{}, nil, ErrBadName},
		{"empty name", "", src, PublishOptions{}, nil, ErrBadName},
		{"long name", strings.Repeat("a", 129), src, PublishOptions{}, nil, ErrBadName},
		{"cancelled", "img", src, PublishOptions{}, cancelled, context.Canceled},
	} {
		ctx := tc.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		m, err := c.Publish(ctx, tc.name, tc.src, tc.o)
		if err == nil || m != nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
			t.Errorf("%s: Publish = %v, %v; want an error wrapping %v", tc.what, m, err, tc.wantErr)
		}
	}
	if got := versionNames(t, c, "img"); !reflect.DeepEqual(got, []string{"v1"}) {
		t.Errorf("versions %q", got)
	}
	checkVersion(t, c, "img", Current)
	if got := dotEntries(t, filepath.Join(c.Root, "img")); got != nil {
		t.Errorf("leftovers %q", got)
	}
	if ents, _ := os.ReadDir(c.Root); len(ents) != 1 {
		t.Errorf("image folders %v", ents)
	}
}

func TestOpenRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	src := makeSources(t, dir)
	root := filepath.Join(dir, "images")
	c, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := c.Publish(context.Background(), name, src, PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		writeRandom(t, filepath.Join(root, name, ".incoming-123", "rootfs"), SquashfsMagic, 100)
		writeRandom(t, filepath.Join(root, name, ".deleting-v0", "kernel"), "", 100)
		if err := os.Symlink("v1", filepath.Join(root, name, ".current-xyz")); err != nil {
			t.Fatal(err)
		}
	}
	// b is being published by someone else: its temporaries stay.
	unlock, err := lockDir(filepath.Join(root, "b"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	if got := dotEntries(t, filepath.Join(root, "a")); got != nil {
		t.Errorf("a: leftovers %q after Open", got)
	}
	if got := dotEntries(t, filepath.Join(root, "b")); len(got) != 3 {
		t.Errorf("b (locked): %q after Open, want its 3 temporaries", got)
	}
	unlock()
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if got := dotEntries(t, filepath.Join(root, name)); got != nil {
			t.Errorf("%s: leftovers %q after Open", name, got)
		}
		checkVersion(t, c, name, Current)
	}
}
