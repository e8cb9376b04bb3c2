package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindKernel builds small root folders and checks which kernel and
// module tree FindKernel picks: symlinks resolve inside the root, never to a
// host file, and a link that climbs out of the root is refused.
func TestFindKernel(t *testing.T) {
	outside := t.TempDir() // a host folder outside every root
	hostKernel := filepath.Join(outside, "vmlinuz-9.9")
	if err := os.WriteFile(hostKernel, []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	climb := strings.Repeat("../", 20) + strings.TrimPrefix(hostKernel, "/")
	for _, tc := range []struct {
		name    string
		files   map[string]string // path in the root -> body, "->target" for a symlink, "/" for a folder
		release string            // the kernel expected, "" when an error is
		path    string            // its path in the root
		modules string            // its module tree in the root, "" for none
		err     string
	}{
		{"plain", map[string]string{"boot/vmlinuz-6.1": "k", "lib/modules/6.1": "/"},
			"6.1", "boot/vmlinuz-6.1", "lib/modules/6.1", ""},
		{"absolute link to a host file", map[string]string{"boot/vmlinuz-6.1": "k", "boot/vmlinuz-9.9": "->" + hostKernel},
			"6.1", "boot/vmlinuz-6.1", "", ""},
		{"absolute link inside the root", map[string]string{"boot/vmlinuz-7.0": "->/opt/k/vmlinuz-7.0", "opt/k/vmlinuz-7.0": "k",
			"usr/lib/modules/7.0": "/"}, "7.0", "opt/k/vmlinuz-7.0", "usr/lib/modules/7.0", ""},
		{"/vmlinuz to a host file", map[string]string{"vmlinuz": "->" + hostKernel}, "", "", "", "no kernel in the root"},
		{"relative link out of the root", map[string]string{"boot/vmlinuz-6.1": "k", "boot/vmlinuz-9.9": "->" + climb},
			"", "", "", "kernel /boot/vmlinuz-9.9: unsafe entry"},
		{"module tree out of the root", map[string]string{"boot/vmlinuz-6.1": "k", "lib/modules/6.1": "->" + strings.Repeat("../", 20) + "tmp"},
			"", "", "", "module tree /lib/modules/6.1: unsafe entry"},
		{"module tree to a host folder", map[string]string{"boot/vmlinuz-6.1": "k", "lib/modules/6.1": "->" + outside},
			"6.1", "boot/vmlinuz-6.1", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, body := range tc.files {
				host := filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
					t.Fatal(err)
				}
				var err error
				switch {
				case body == "/":
					err = os.Mkdir(host, 0o755)
				case strings.HasPrefix(body, "->"):
					err = os.Symlink(strings.TrimPrefix(body, "->"), host)
				default:
					err = os.WriteFile(host, []byte(body), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			k, err := FindKernel(root)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("FindKernel = %+v, %v; want an error with %q", k, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mods := ""
			if tc.modules != "" {
				mods = filepath.Join(root, tc.modules)
			}
			if k.Release != tc.release || k.Path != filepath.Join(root, tc.path) || k.Modules != mods {
				t.Errorf("FindKernel = release %q, path %q, modules %q; want %q, %q, %q",
					k.Release, k.Path, k.Modules, tc.release, filepath.Join(root, tc.path), mods)
			}
		})
	}
}
