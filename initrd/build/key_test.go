package build

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"moobi/bootsign"
)

func newPub(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// gzipCpio is a gzip'd newc archive of recs, as mkuimage's base would be.
func gzipCpio(t *testing.T, recs ...cpio.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.Newc.Writer(zw)
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

type entry struct {
	mode uint64
	data string
}

// members reads a file of concatenated gzip'd cpio archives back, one
// member at a time, with u-root's cpio reader: the entries of each member.
func members(t *testing.T, path string) []map[string]entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]entry
	for {
		zr.Multistream(false)
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("member %d: %v", len(out)+1, err)
		}
		recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatalf("member %d: cpio: %v", len(out)+1, err)
		}
		m := map[string]entry{}
		for _, r := range recs {
			var data []byte
			if r.ReaderAt != nil {
				data, _ = io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			}
			m[r.Name] = entry{r.Mode, string(data)}
		}
		out = append(out, m)
		if err := zr.Reset(br); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("after member %d: %v", len(out), err)
		}
	}
}

// TestWithKey: the initramfs is the base, byte for byte, followed by a
// second gzip'd cpio member holding the public key at the path the node
// reads, with its folders; read member by member, the key is the new one
// (an older key in the base loses, as later files win in the kernel).
func TestWithKey(t *testing.T) {
	dir := t.TempDir()
	oldPub, pub := newPub(t), newPub(t)
	oldPEM, _ := bootsign.MarshalPublicKey(oldPub)
	base := filepath.Join(dir, "base.cpio.gz")
	baseBytes := gzipCpio(t,
		cpio.Directory("bin", 0o755),
		cpio.StaticFile("bin/moobi-node", "ELF...", 0o755),
		cpio.Directory("etc", 0o755),
		cpio.Directory("etc/moobi", 0o755),
		cpio.StaticFile("etc/moobi/boot-signing.pub", string(oldPEM), 0o644),
	)
	if err := os.WriteFile(base, baseBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "node-initrd.cpio.gz")
	if err := WithKey(base, pub, out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.HasPrefix(got, baseBytes) {
		t.Fatal("the initramfs does not start with the base, unchanged")
	}
	ms := members(t, out)
	if len(ms) != 2 {
		t.Fatalf("%d gzip members, want 2 (base, key)", len(ms))
	}
	if _, ok := ms[0]["bin/moobi-node"]; !ok {
		t.Fatalf("first member lacks the base's files: %v", ms[0])
	}
	name := strings.TrimPrefix(bootsign.InitramfsPath, "/")
	key := ms[1]
	if len(key) != 3 || key["etc"].mode != cpio.S_IFDIR|0o755 || key["etc/moobi"].mode != cpio.S_IFDIR|0o755 || key[name].mode != cpio.S_IFREG|0o644 {
		t.Fatalf("key member %v, want etc/, etc/moobi/ (0755) and %s (0644)", key, name)
	}
	// Later members win, as in the kernel's unpacker.
	merged := map[string]entry{}
	for _, m := range ms {
		for n, e := range m {
			merged[n] = e
		}
	}
	got2, err := bootsign.ParsePublicKey([]byte(merged[name].data))
	if err != nil || !got2.Equal(pub) {
		t.Fatalf("key file %q: %v; want the new key", merged[name].data, err)
	}

	// Per key, only the small member differs; the same key gives the same bytes.
	a1, _ := KeyArchive(pub)
	a2, _ := KeyArchive(pub)
	b1, _ := KeyArchive(oldPub)
	if !bytes.Equal(a1, a2) || bytes.Equal(a1, b1) || len(a1) > 1024 {
		t.Fatalf("key archives: %d bytes, reproducible %v, differ per key %v", len(a1), bytes.Equal(a1, a2), !bytes.Equal(a1, b1))
	}
	if !bytes.Equal(got[len(baseBytes):], a1) {
		t.Fatal("the appended member is not KeyArchive(pub)")
	}
}

func TestWithKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	notGzip := filepath.Join(dir, "plain.cpio")
	os.WriteFile(notGzip, []byte("070701..."), 0o644)
	out := filepath.Join(dir, "out.cpio.gz")
	if err := WithKey(notGzip, newPub(t), out); err == nil || !strings.Contains(err.Error(), "is not gzip'd") {
		t.Fatalf("plain base: %v", err)
	}
	if err := WithKey(filepath.Join(dir, "nope"), newPub(t), out); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing base: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left %d files behind", len(ents)-1)
	}
}
