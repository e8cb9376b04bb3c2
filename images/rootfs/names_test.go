package rootfs

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"./", ".", ""},
		{".", ".", ""},
		{"./etc/passwd", "etc/passwd", ""},
		{"etc//passwd/", "etc/passwd", ""},
		{"usr/lib/./x", "usr/lib/x", ""},
		{"a..b/..c", "a..b/..c", ""},
		{"", "", "empty name"},
		{"/etc/passwd", "", "absolute path"},
		{"//etc", "", "absolute path"},
		{"../x", "", "climbs out"},
		{"etc/../../x", "", "climbs out"},
		{"etc/..", "", "climbs out"},
		{"a\x00b", "", "NUL"},
	} {
		got, err := CleanName(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("CleanName(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzCleanName: an accepted name stays inside the root once joined to it.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"./", "./etc/passwd", "/etc", "../x", "a/../../b", "a/./b//c/", "..", "...", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := CleanName(name)
		if err != nil {
			return
		}
		if got == "" || strings.HasPrefix(got, "/") || path.Clean(got) != got || got == ".." || strings.HasPrefix(got, "../") || strings.Contains(got, "\x00") {
			t.Fatalf("CleanName(%q) = %q", name, got)
		}
		if j := path.Join("/root", got); j != "/root" && !strings.HasPrefix(j, "/root/") {
			t.Fatalf("CleanName(%q) = %q leads to %s", name, got, j)
		}
	})
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/lib/modules", "etc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for link, target := range map[string]string{
		"lib":         "usr/lib",                     // merged /usr
		"etc/abs":     "/usr/lib",                    // absolute: taken from the root
		"etc/up":      "../..",                       // out of the root
		"etc/loop":    "loop",                        // itself
		"etc/dangles": "missing/thing",               // inside, not there yet
		"etc/root":    "../usr/lib/modules/../../..", // the root itself
		"etc/deep":    "../lib/../../..",             // lib is usr/lib: one too many
		"usr/up":      "../lib/../..",                // usr/lib/.. is usr: fine
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		in         string
		followLast bool
		want, err  string
	}{
		{"lib/modules/6.1", true, "usr/lib/modules/6.1", ""},
		{"lib", false, "lib", ""},
		{"lib", true, "usr/lib", ""},
		{"etc/abs/modules", true, "usr/lib/modules", ""},
		{"etc/dangles", true, "etc/missing/thing", ""},
		{".", true, ".", ""},
		{"etc/up/x", true, "", "link /etc/up -> ../.. points outside the root"},
		{"etc/root/x", true, "x", ""},
		{"usr/up/etc", true, "etc", ""},
		{"etc/deep/x", true, "", "link /etc/deep -> ../lib/../../.. points outside the root"},
		{"etc/loop/x", true, "", "too many levels"},
	} {
		got, err := Resolve(root, tc.in, tc.followLast)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Resolve(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q, %v) = %q, %v; want %q", tc.in, tc.followLast, got, err, tc.want)
		}
	}
}
