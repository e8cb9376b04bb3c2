package httpd

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moobi/images/catalog"
	"moobi/inventory"
)

func TestGrubConfig(t *testing.T) {
	const base = "http://10.99.0.1:8080"
	mac, _ := inventory.ParseMAC("52:54:00:12:34:01")
	host := &inventory.Host{Name: "rack1-node01", MAC: mac}
	image := &inventory.Profile{Name: "web", Image: "web", Cmdline: "console=ttyS0 panic=-1"}
	withModules := &catalog.Manifest{Name: "web", Version: "v2", Files: map[string]catalog.FileInfo{catalog.FileModules: {}}}
	noModules := &catalog.Manifest{Name: "web", Version: "v1", Files: map[string]catalog.FileInfo{}}
	direct := &inventory.Profile{Name: "rescue", Kernel: "/srv/vmlinuz", Initrd: []string{"/srv/a.img", "/srv/b.img"}}
	tests := []struct {
		name string
		p    *inventory.Profile
		m    *catalog.Manifest
		want string // "" for an error
	}{
		{"image with modules", image, withModules, `# Moobi: booting rack1-node01 (52:54:00:12:34:01) into image web version v2, through the Secure Boot chain.
echo 'Moobi: booting rack1-node01 (52:54:00:12:34:01) into image web version v2'
if linux (tftp,10.99.0.1)/images/web/v2/kernel console=ttyS0 panic=-1 moobi.server=http://10.99.0.1:8080 moobi.mac=52:54:00:12:34:01 moobi.hostname=rack1-node01 moobi.version=v2 moobi.boot=TOKEN; then
  if initrd (tftp,10.99.0.1)/node/node-initrd.cpio.gz (tftp,10.99.0.1)/images/web/v2/modules; then
    boot
  fi
fi
echo 'Moobi: boot failed'
`},
		{"image without modules", image, noModules, `# Moobi: booting rack1-node01 (52:54:00:12:34:01) into image web version v1, through the Secure Boot chain.
echo 'Moobi: booting rack1-node01 (52:54:00:12:34:01) into image web version v1'
if linux (tftp,10.99.0.1)/images/web/v1/kernel console=ttyS0 panic=-1 moobi.server=http://10.99.0.1:8080 moobi.mac=52:54:00:12:34:01 moobi.hostname=rack1-node01 moobi.version=v1 moobi.boot=TOKEN; then
  if initrd (tftp,10.99.0.1)/node/node-initrd.cpio.gz; then
    boot
  fi
fi
echo 'Moobi: boot failed'
`},
		{"direct", direct, nil, `# Moobi: booting rack1-node01 (52:54:00:12:34:01) with profile rescue, through the Secure Boot chain.
echo 'Moobi: booting rack1-node01 (52:54:00:12:34:01) with profile rescue'
if linux (tftp,10.99.0.1)/profiles/rescue/kernel moobi.hostname=rack1-node01 moobi.boot=TOKEN; then
  if initrd (tftp,10.99.0.1)/profiles/rescue/initrd/0/a.img (tftp,10.99.0.1)/profiles/rescue/initrd/1/b.img; then
    boot
  fi
fi
echo 'Moobi: boot failed'
`},
		{"cmdline grub would expand", &inventory.Profile{Name: "web", Image: "web", Cmdline: "root=${root}"}, noModules, ""},
		{"cmdline with a quote", &inventory.Profile{Name: "web", Image: "web", Cmdline: "x='a b'"}, noModules, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderBoot(formatGrub, host, tc.p, tc.m, base, "TOKEN")
			if tc.want == "" {
				if err == nil {
					t.Fatalf("rendered:\n%s\nwant an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("grub config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBootPlanShared: iPXE's script and grub's configuration boot the
// same kernel with the same arguments and initrds; iPXE adds initrd=NAME.
func TestBootPlanShared(t *testing.T) {
	mac, _ := inventory.ParseMAC("52:54:00:12:34:01")
	host := &inventory.Host{Name: "n1", MAC: mac}
	p := &inventory.Profile{Name: "web", Image: "web", Cmdline: "console=ttyS0"}
	m := &catalog.Manifest{Name: "web", Version: "v1", Files: map[string]catalog.FileInfo{catalog.FileModules: {}}}
	ipxe, err := renderBoot(formatIPXE, host, p, m, "http://a:1", "T")
	if err != nil {
		t.Fatal(err)
	}
	grub, err := renderBoot(formatGrub, host, p, m, "http://a:1", "T")
	if err != nil {
		t.Fatal(err)
	}
	kernelLine := regexp.MustCompile(`(?m)^kernel http://a:1(\S+) (.*) \|\| goto failed$`).FindStringSubmatch(string(ipxe))
	linuxLine := regexp.MustCompile(`(?m)^if linux \(tftp,a\)(\S+) (.*); then$`).FindStringSubmatch(string(grub))
	if kernelLine == nil || linuxLine == nil {
		t.Fatalf("no kernel line:\n%s\n%s", ipxe, grub)
	}
	if kernelLine[1] != linuxLine[1] {
		t.Errorf("kernels differ: iPXE %s, grub %s", kernelLine[1], linuxLine[1])
	}
	if want := "initrd=node-initrd.cpio.gz initrd=modules " + linuxLine[2]; kernelLine[2] != want {
		t.Errorf("iPXE args %q, want grub's with initrd= names: %q", kernelLine[2], want)
	}
}

func TestGrubStub(t *testing.T) {
	got, err := GrubStub("http://10.99.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	want := `# Moobi: each host's configuration comes from the appliance, by MAC.
set timeout=0
while true; do
  echo "Moobi: fetching (tftp,10.99.0.1)/boot/${net_default_mac}.grub"
  source (tftp,10.99.0.1)/boot/${net_default_mac}.grub
  echo 'Moobi: no boot, retrying in 5 seconds'
  sleep 5
done
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("stub (-want +got):\n%s", diff)
	}
	if _, err := GrubStub("https://10.99.0.1"); err == nil {
		t.Error("an https base was accepted: grub's network build speaks plain HTTP")
	}
}

// TestGrubConfigServed: /boot/MAC.grub is the host's grub configuration;
// unknown MACs get nothing.
func TestGrubConfigServed(t *testing.T) {
	srv, _, _ := setup(t)
	resp, body := get(t, srv.URL+"/boot/52:54:00:12:34:01.grub")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "if linux (tftp,10.99.0.1)/profiles/rescue/kernel console=ttyS0 quiet moobi.hostname=rack1-node01 ") {
		t.Fatalf("GET .grub: %d\n%s", resp.StatusCode, body)
	}
	for _, path := range []string{"/boot/52:54:00:99:99:99.grub", "/boot/not-a-mac.grub", "/boot/52:54:00:12:34:01.cfg"} {
		if resp, body := get(t, srv.URL+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404\n%s", path, resp.StatusCode, body)
		}
	}
}

// TestOpenTFTPNotThrottled: grub configurations fetched through the TFTP
// bridge (no client address) are not held to one address's script rate:
// a rack booting at once shares none.
func TestOpenTFTPNotThrottled(t *testing.T) {
	s, _, _ := setupServer(t)
	for i := 0; i < 3*ScriptRequestBurst; i++ {
		f, _, err := s.OpenTFTP("/boot/52:54:00:12:34:01.grub")
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		f.Close()
	}
}

func TestKernelFetch(t *testing.T) {
	for name, want := range map[string]bool{
		"/images/web/v1/kernel": true, "images/web/v1/modules": true, "/node/node-initrd.cpio.gz": true,
		"/profiles/rescue/kernel": true, "/profiles/rescue/initrd/0/a.img": true,
		"/boot/52:54:00:12:34:01.grub": false, "grub/grub.cfg": false, "grubx64.efi": false, "/images/web/v1/rootfs": false,
	} {
		if got := KernelFetch(name); got != want {
			t.Errorf("KernelFetch(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestOpenTFTP: grub's TFTP fetches are answered as the same GET would be;
// other names are not this bridge's, and a root filesystem never is.
func TestOpenTFTP(t *testing.T) {
	s, kernel, _ := setupServer(t)
	tests := []struct {
		name string
		ok   bool
		want string // body, or "" for fs.ErrNotExist
	}{
		{"/profiles/rescue/kernel", true, string(kernel)},
		{"profiles/rescue/initrd/0/rescue.cpio.gz", true, "initrd-bytes"},
		{"/boot/52:54:00:12:34:01.grub", true, "if linux (tftp,10.99.0.1)/profiles/rescue/kernel"},
		{"/boot/52:54:00:99:99:99.grub", true, ""},
		{"/profiles/nosuch/kernel", true, ""},
		{"/boot/52:54:00:12:34:01.ipxe", false, ""},
		{"/images/web/current/rootfs", false, ""},
		{"/v1/nodes", false, ""},
		{"/profiles/../v1/nodes", false, ""},
		{"ipxe.efi", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, ok, err := s.OpenTFTP(tc.name)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if tc.want == "" {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("err = %v, want fs.ErrNotExist", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			body, _ := io.ReadAll(f)
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("body %.200q, want %.80q", body, tc.want)
			}
		})
	}
}
