package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/zeebo/blake3"
)

// TestPieceSums: the list holds each piece's SHA-256 however the bytes are
// written (pieces split across writes, a short last piece).
func TestPieceSums(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16,000 bytes
	var want []byte
	for off := 0; off < len(data); off += 4096 {
		s := sha256.Sum256(data[off:min(off+4096, len(data))])
		want = append(want, s[:]...)
	}
	for _, step := range []int{1, 100, 4096, 5000, len(data)} {
		p := newPieceSums(4096, sha256.New())
		for off := 0; off < len(data); off += step {
			p.Write(data[off:min(off+step, len(data))])
		}
		if got := p.Sums(); !bytes.Equal(got, want) {
			t.Errorf("writes of %d bytes: %d bytes of sums, not the %d expected", step, len(got), len(want))
		}
	}
}

// TestPublishWritesPieceSums: a published version holds FilePieces and
// FilePiecesBLAKE3, one SHA-256 (BLAKE3) per torrent piece of its rootfs,
// and PiecesSHA256 is each file's SHA-256.
func TestPublishWritesPieceSums(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Publish(context.Background(), "web", makeSources(t, dir), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rootfs, _ := c.Path("web", m.Version, FileRootfs)
	data, err := os.ReadFile(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	for file, sum := range map[string]func([]byte) [32]byte{FilePieces: sha256.Sum256, FilePiecesBLAKE3: blake3.Sum256} {
		var want []byte
		for off := int64(0); off < int64(len(data)); off += m.PieceLength {
			s := sum(data[off:min(off+m.PieceLength, int64(len(data)))])
			want = append(want, s[:]...)
		}
		p, err := c.Path("web", Current, file)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, want) || len(got) != 32*m.Pieces {
			t.Fatalf("%s: %d bytes, want the %d of %d pieces' sums", file, len(got), len(want), m.Pieces)
		}
		listSum := sha256.Sum256(got)
		if h, err := c.PiecesSHA256("web", m.Version, file); err != nil || h != hex.EncodeToString(listSum[:]) {
			t.Fatalf("PiecesSHA256(%s): %q, %v; want %x", file, h, err, listSum)
		}
		os.Remove(p)
		if _, err := c.PiecesSHA256("web", m.Version, file); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a version without %s: %v, want ErrNotFound", file, err)
		}
	}
	if _, err := c.PiecesSHA256("web", m.Version, FileRootfs); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PiecesSHA256 of the rootfs: %v, want ErrNotFound (not a piece list)", err)
	}
}
