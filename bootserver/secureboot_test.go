package bootserver

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"moobi/inventory"
)

// TestOpenSecureBoot: the TFTP names of the Secure Boot chain open the
// configured shim and grub and the stub; grub's probes of its prefix are
// not found (not refused); other names are not the chain's.
func TestOpenSecureBoot(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755)
	os.WriteFile(filepath.Join(dir, "shim.efi"), []byte("SHIM"), 0o644)
	os.WriteFile(filepath.Join(dir, "grub.efi"), []byte("GRUB"), 0o644)
	cfg := filepath.Join(dir, "hosts.yaml")
	os.WriteFile(cfg, []byte(`appliance:
  interface: lo
  address: 10.99.0.1
  http_port: 8080
  data_dir: `+dir+`/data
  ipxe_dir: `+dir+`/ipxe
  shim: shim.efi
  grub: grub.efi
profiles:
  web:
    image: web
    secure_boot: true
hosts:
  n1:
    mac: 52:54:00:00:00:01
    profile: web
`), 0o644)
	store, err := inventory.Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), serverIP: net.IPv4(10, 99, 0, 1)}
	for name, want := range map[string]string{
		"shimx64.efi":    "SHIM",
		"/grubx64.efi":   "GRUB",
		"grub/grub.cfg":  "source (tftp,10.99.0.1)/boot/${net_default_mac}.grub",
		"/grub/grub.cfg": "while true",
	} {
		f, ok, err := s.openSecureBoot(name)
		if !ok || err != nil {
			t.Fatalf("%s: ok %v, err %v", name, ok, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: %q, want %q", name, b, want)
		}
	}
	for _, name := range []string{"/grub/x86_64-efi/command.lst", "grub/x86_64-efi/grub.cfg"} {
		if _, ok, err := s.openSecureBoot(name); !ok || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: ok %v, err %v; want not found", name, ok, err)
		}
	}
	if _, ok, _ := s.openSecureBoot("undionly.kpxe"); ok {
		t.Error("undionly.kpxe taken as part of the chain")
	}
	uses, shim := secureBootEnv(store.Current(), s.Log)
	mac, _ := inventory.ParseMAC("52:54:00:00:00:01")
	other, _ := inventory.ParseMAC("52:54:00:00:00:02")
	if shim != "shimx64.efi" || !uses(mac) || uses(other) {
		t.Errorf("secureBootEnv: shim %q, n1 %v, other %v", shim, uses(mac), uses(other))
	}
}
