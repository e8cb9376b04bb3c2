package catalog

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestPieceLength(t *testing.T) {
	const K, M, G = 1 << 10, 1 << 20, 1 << 30
	for _, tc := range []struct{ size, want int64 }{
		{0, 256 * K},
		{1, 256 * K},
		{3 * M, 256 * K},
		{500 * M, 256 * K},     // 2000 pieces
		{500*M + 1, 512 * K},   // 1001
		{1 * G, 1 * M},         // 1024
		{2000 * M, 1 * M},      // 2000
		{2000*M + 1, 2 * M},    // 1001
		{4 * G, 4 * M},         // 1024
		{8000 * M, 4 * M},      // 2000
		{8000*M + 1, 4 * M},    // capped: 2001
		{100 * G, 4 * M},       // capped: 25600
		{1<<62 + 12345, 4 * M}, // no overflow
	} {
		got := PieceLength(tc.size)
		if got != tc.want {
			t.Errorf("PieceLength(%d) = %d, want %d", tc.size, got, tc.want)
		}
		if got&(got-1) != 0 || got < MinPieceLength || got > MaxPieceLength {
			t.Errorf("PieceLength(%d) = %d: not a power of two in range", tc.size, got)
		}
		if n := (tc.size + got - 1) / got; got < MaxPieceLength && got > MinPieceLength && (n <= MaxPieces/2 || n > MaxPieces) {
			t.Errorf("PieceLength(%d) = %d: %d pieces", tc.size, got, n)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "debian-12", "v1", "2024.06.01", "Ubuntu_24.04", "current", strings.Repeat("x", 128), "a..b"} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".", "..", ".hidden", ".incoming-1", "a/b", "/", "a b", "a\x00", "é", "a\\b", "~", strings.Repeat("x", 129)} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

func TestVersionLess(t *testing.T) {
	ordered := []string{"1", "2", "10", "2024.6.1", "2024.06.2", "2024.10.1", "v", "v1", "v01a", "v2", "v9", "v10", "v10a", "v100", "w"}
	for i, a := range ordered {
		for j, b := range ordered {
			if got := versionLess(a, b); got != (i < j) {
				t.Errorf("versionLess(%q, %q) = %v", a, b, got)
			}
		}
	}
}

func TestPath(t *testing.T) {
	dir := t.TempDir()
	src := makeSources(t, dir)
	c, err := Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(context.Background(), "img", src, PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Path("img", Current, FileRootfs); err != nil || p != filepath.Join(c.Root, "img", "v1", "rootfs") {
		t.Errorf("Path(current rootfs) = %q, %v", p, err)
	}
	for _, tc := range []struct {
		name, version, file string
		want                error
	}{
		{"img", "v1", "passwd", ErrNotFound},
		{"img", "v1", "../v1/kernel", ErrNotFound},
		{"img", "v1", "", ErrNotFound},
		{"img", "v1", "modules", ErrNotFound}, // not published
		{"img", "v2", "kernel", ErrNotFound},
		{"other", "current", "kernel", ErrNotFound},
		{"img", "..", "kernel", ErrBadName},
		{"img", ".", "kernel", ErrBadName},
		{"img", "v1/..", "kernel", ErrBadName},
		{"img", "/", "kernel", ErrBadName},
		{"img", "", "kernel", ErrBadName},
		{"..", "v1", "kernel", ErrBadName},
		{"../img", "v1", "kernel", ErrBadName},
		{"img/v1", "..", "kernel", ErrBadName},
		{"/etc", "v1", "kernel", ErrBadName},
		{".incoming-x", "v1", "kernel", ErrBadName},
	} {
		if p, err := c.Path(tc.name, tc.version, tc.file); !errors.Is(err, tc.want) {
			t.Errorf("Path(%q, %q, %q) = %q, %v; want %v", tc.name, tc.version, tc.file, p, err, tc.want)
		}
	}
	if _, err := c.Manifest("img", "../img/v1"); !errors.Is(err, ErrBadName) {
		t.Errorf("Manifest(bad version): %v", err)
	}
	if _, err := c.Current("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Current(missing image): %v", err)
	}
}
