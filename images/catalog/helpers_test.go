package catalog

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
)

// writeRandom writes prefix followed by random bytes, size bytes in all.
func writeRandom(t testing.TB, path, prefix string, size int) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	copy(b, prefix)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeSources writes a fake kernel and a fake squashfs (~3 MiB) under dir.
func makeSources(t testing.TB, dir string) Sources {
	t.Helper()
	s := Sources{Kernel: filepath.Join(dir, "bzImage"), Rootfs: filepath.Join(dir, "root.squashfs")}
	writeRandom(t, s.Kernel, "MZ", 64<<10)
	writeRandom(t, s.Rootfs, SquashfsMagic, 3<<20+12345)
	return s
}

func fileSum(t testing.TB, path string) FileInfo {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return FileInfo{Size: int64(len(b)), SHA256: hex.EncodeToString(s[:])}
}

// checkVersion checks that a version is whole: its manifest loads, its files
// have the manifest's sizes and sha256 (recomputed), and its torrent matches
// the manifest and the rootfs (infohash and pieces recomputed).
func checkVersion(t testing.TB, c *Catalog, name, version string) *Manifest {
	t.Helper()
	m, err := c.Manifest(name, version)
	if err != nil {
		t.Fatalf("Manifest(%s, %s): %v", name, version, err)
	}
	if _, ok := m.Files[FileKernel]; !ok {
		t.Errorf("manifest has no kernel: %+v", m.Files)
	}
	for file, want := range m.Files {
		p, err := c.Path(name, version, file)
		if err != nil {
			t.Fatalf("Path(%s, %s, %s): %v", name, version, file, err)
		}
		if want2 := filepath.Join(c.Root, name, m.Version, file); p != want2 {
			t.Errorf("Path = %s, want %s", p, want2)
		}
		if got := fileSum(t, p); got != want {
			t.Errorf("%s: %+v, manifest says %+v", p, got, want)
		}
	}
	mi, err := c.MetaInfo(name, version)
	if err != nil {
		t.Fatal(err)
	}
	if got := mi.HashInfoBytes().HexString(); got != m.InfoHash || len(got) != 40 {
		t.Errorf("torrent infohash %s, manifest says %s", got, m.InfoHash)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	size := m.Files[FileRootfs].Size
	if info.Name != "rootfs" || info.Length != size || len(info.Files) != 0 || info.Private == nil || !*info.Private {
		t.Errorf("torrent info: name %q length %d (want %d) files %d private %v", info.Name, info.Length, size, len(info.Files), info.Private)
	}
	if info.PieceLength != m.PieceLength || info.PieceLength != PieceLength(size) || info.NumPieces() != m.Pieces {
		t.Errorf("torrent: piece length %d, %d pieces; manifest: %d, %d", info.PieceLength, info.NumPieces(), m.PieceLength, m.Pieces)
	}
	f, err := os.Open(filepath.Join(c.Root, name, m.Version, FileRootfs))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pieces, err := metainfo.GeneratePieces(f, info.PieceLength, nil)
	if err != nil || !bytes.Equal(pieces, info.Pieces) {
		t.Errorf("torrent pieces do not match the rootfs (err %v)", err)
	}
	return m
}

// dotEntries lists the names starting with "." in dir.
func dotEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var dots []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			dots = append(dots, e.Name())
		}
	}
	return dots
}

func versionNames(t testing.TB, c *Catalog, name string) []string {
	t.Helper()
	imgs, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		if img.Name == name {
			var vs []string
			for _, m := range img.Versions {
				vs = append(vs, m.Version)
			}
			return vs
		}
	}
	return nil
}

// fakeMod is a module of a fake module tree: its path and dependencies.
type fakeMod struct {
	rel  string
	deps []string
}

// makeModTree builds a fake module tree dir/RELEASE. Uncompressed and .gz
// modules are small ELF files with a .modinfo "depends=" field; .xz and .zst
// ones are opaque bytes. modules.dep is written if withDep.
func makeModTree(t testing.TB, dir, release string, mods []fakeMod, withDep bool) string {
	t.Helper()
	root := filepath.Join(dir, release)
	var dep strings.Builder
	for _, m := range mods {
		var names []string
		for _, d := range m.deps {
			names = append(names, strings.TrimSuffix(filepath.Base(d), moduleExt(d)))
		}
		b := fakeELF(t, "name="+moduleName(m.rel)+"\x00depends="+strings.Join(names, ",")+"\x00alias=test:"+moduleName(m.rel)+"\x00license=GPL\x00")
		switch moduleExt(m.rel) {
		case ".ko.gz":
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			zw.Write(b)
			zw.Close()
			b = zb.Bytes()
		case ".ko.xz", ".ko.zst":
			b = []byte("compressed " + m.rel)
		}
		writeFile(t, filepath.Join(root, m.rel), b)
		dep.WriteString(m.rel + ":")
		for _, d := range m.deps {
			dep.WriteString(" " + d)
		}
		dep.WriteString("\n")
	}
	if withDep {
		writeFile(t, filepath.Join(root, "modules.dep"), []byte(dep.String()))
	}
	writeFile(t, filepath.Join(root, "modules.alias"), []byte("alias virtio:d00000001v* virtio_net\n"))
	writeFile(t, filepath.Join(root, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\n"))
	writeFile(t, filepath.Join(root, "System.map"), []byte("not packed\n"))
	writeFile(t, filepath.Join(root, "kernel/drivers/block/README"), []byte("not a module\n"))
	if err := os.Symlink("/nonexistent/build", filepath.Join(root, "build")); err != nil {
		t.Fatal(err)
	}
	return root
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeELF returns a minimal ELF64 relocatable file with a .modinfo section.
func fakeELF(t testing.TB, modinfo string) []byte {
	t.Helper()
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	dataOff := uint64(64)
	strOff := dataOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: 1,
		Shoff: shOff, Ehsize: 64, Shentsize: 64, Shnum: 3, Shstrndx: 2}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	b.WriteString(modinfo)
	b.WriteString(shstr)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: dataOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1},
	} {
		binary.Write(&b, binary.LittleEndian, s)
	}
	return b.Bytes()
}

type cpioEntry struct {
	name                          string
	ino, mode, uid, gid, nlink    uint32
	mtime, devmaj, devmin, rdevmj uint32
	data                          []byte
}

// readCpio parses a gzip'd newc archive strictly: valid headers, 4-byte
// alignment, a trailer, nothing but padding after it.
func readCpio(t testing.TB, gz []byte) []cpioEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var out []cpioEntry
	off := 0
	align := func() { off = (off + 3) &^ 3 }
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("cpio: no header at %d", off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("cpio: header at %d: %v", off, err)
			}
			f[i] = uint32(v)
		}
		namesize, size := int(f[11]), int(f[6])
		off += 110
		name := string(b[off : off+namesize-1])
		if b[off+namesize-1] != 0 {
			t.Fatalf("cpio: %q: name not NUL-terminated", name)
		}
		off += namesize
		align()
		if name == "TRAILER!!!" {
			if rest := b[off:]; len(bytes.Trim(rest, "\x00")) != 0 {
				t.Fatalf("cpio: %d bytes after the trailer", len(rest))
			}
			return out
		}
		out = append(out, cpioEntry{name: name, ino: f[0], mode: f[1], uid: f[2], gid: f[3], nlink: f[4],
			mtime: f[5], devmaj: f[7], devmin: f[8], rdevmj: f[9], data: b[off : off+size]})
		off += size
		align()
	}
}

func cpioNames(es []cpioEntry) []string {
	var ns []string
	for _, e := range es {
		ns = append(ns, e.name)
	}
	sort.Strings(ns)
	return ns
}
