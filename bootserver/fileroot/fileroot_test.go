package fileroot

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func setup(t *testing.T) (Roots, string) {
	t.Helper()
	base := t.TempDir()
	a, b, outside := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "outside")
	for _, d := range []string{a, b, outside, filepath.Join(b, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(a, "undionly.kpxe"), "from a")
	write(filepath.Join(b, "undionly.kpxe"), "shadowed")
	write(filepath.Join(b, "sub", "file"), "nested")
	write(filepath.Join(outside, "secret"), "secret")
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(a, "link-out")))
	must(t, os.Symlink("../outside/secret", filepath.Join(a, "rel-link-out")))
	must(t, os.Symlink("undionly.kpxe", filepath.Join(a, "link-in")))
	return Roots{a, b}, base
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	roots, _ := setup(t)
	tests := []struct {
		name    string
		want    string // contents, when the open succeeds
		wantErr error
	}{
		{"undionly.kpxe", "from a", nil},
		{"sub/file", "nested", nil},
		{"./sub//file", "nested", nil},
		{"link-in", "from a", nil},
		{"missing", "", fs.ErrNotExist},
		{"../outside/secret", "", ErrBadName},
		{"sub/../../outside/secret", "", ErrBadName},
		{"/etc/passwd", "", ErrBadName},
		{"link-out", "", ErrBadName},
		{"rel-link-out", "", ErrBadName},
		{"sub", "", ErrBadName},
		{"", "", ErrBadName},
		{".", "", ErrBadName},
		{"a\x00b", "", ErrBadName},
		{"..\\outside\\secret", "", ErrBadName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := roots.Open(tc.name)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open(%q) err = %v, want %v", tc.name, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.name, err)
			}
			defer f.Close()
			got, _ := io.ReadAll(f)
			if string(got) != tc.want {
				t.Fatalf("Open(%q) read %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

// FuzzCleanName checks that no accepted name can climb out of its folder.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"undionly.kpxe", "a/b", "../x", "/etc/passwd", "a/../../b", "..", "a\x00", "./a//b/", "...", "a/./.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		clean, err := CleanName(name)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v does not wrap ErrBadName", err)
			}
			return
		}
		if !fs.ValidPath(clean) {
			t.Fatalf("CleanName(%q) = %q, not a valid relative path", name, clean)
		}
		if filepath.IsAbs(clean) {
			t.Fatalf("CleanName(%q) = %q is absolute", name, clean)
		}
	})
}
