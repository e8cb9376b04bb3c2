package fetch

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCacheNotTrusted: a cache file is reused only for the pieces that
// verify, whatever it looks like: garbage of the image's length, a short
// file whose first pieces are the image's and the rest garbage, an empty
// file. Pieces past a short file's end are fetched without being hashed
// first (piecestore), and the image still verifies.
func TestCacheNotTrusted(t *testing.T) {
	const size, piece = 2 << 20, 256 << 10
	a := newFakeAppliance(t, size)
	garbage := bytes.Repeat([]byte{0xa5, 0x5a, 0x00, 0xff}, size/4)
	for _, tc := range []struct {
		name   string
		held   []byte
		reused int64
	}{
		{"garbage of the image's length", garbage, 0},
		{"two valid pieces then garbage, short", append(bytes.Clone(a.rootfs[:2*piece]), garbage[:piece+100]...), 2 * piece},
		{"empty", []byte{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "web.rootfs"), tc.held, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := Fetch(ctx, opts(a, dir))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Stats.Reused != tc.reused {
				t.Errorf("reused %d bytes, want %d", s.Stats.Reused, tc.reused)
			}
			if s.Stats.FirstByte <= 0 {
				t.Errorf("first byte after %v: nothing counted as received", s.Stats.FirstByte)
			}
			got, _ := os.ReadFile(s.Path)
			if !bytes.Equal(got, a.rootfs) {
				t.Fatal("the cache does not hold the image")
			}
		})
	}
}

// TestPieceSums: with each piece's SHA-256 (or BLAKE3) in the boot config,
// a fetch checks pieces against them (a corrupted cache piece is fetched
// again, the rest reused) and skips the whole-file pass; a list other than
// the one the signed config pins is refused before anything is downloaded.
// A config with both lists is checked against the BLAKE3 one.
func TestPieceSums(t *testing.T) {
	for _, b3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "SHA-256", true: "BLAKE3"}[b3], func(t *testing.T) { pieceSumsFetch(t, b3) })
	}
}

func pieceSumsFetch(t *testing.T, b3 bool) {
	a := newFakeAppliance(t, 4<<20)
	a.pieces, a.blake3 = true, b3
	list := "/pieces"
	if b3 {
		list = "/pieces.blake3"
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Fetch(ctx, opts(a, dir))
	if err != nil {
		t.Fatal(err)
	}
	if (s.store.BLAKE3 != nil) != b3 || (s.store.SHA256 != nil) == b3 {
		t.Errorf("the fetch checked pieces against SHA-256 %v, BLAKE3 %v; want BLAKE3 %v", s.store.SHA256 != nil, s.store.BLAKE3 != nil, b3)
	}
	s.Close()
	f, _ := os.OpenFile(s.Path, os.O_WRONLY, 0)
	f.WriteAt([]byte{0xde, 0xad}, 3<<20+5)
	f.Close()
	s, err = Fetch(ctx, opts(a, dir))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if want := int64(len(a.rootfs)) - 256<<10; s.Stats.Reused != want {
		t.Errorf("reused %d bytes, want %d (all but the corrupted piece)", s.Stats.Reused, want)
	}
	if got, _ := os.ReadFile(s.Path); !bytes.Equal(got, a.rootfs) {
		t.Fatal("corrupted cache not repaired")
	}

	a.badPieces = true
	_, err = Fetch(ctx, opts(a, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "piece sums "+a.srv.URL+list+": sha256 ") {
		t.Fatalf("a list other than the signed one: %v", err)
	}
}
