package fetch

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
