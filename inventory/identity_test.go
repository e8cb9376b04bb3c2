package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQzp2wwx0kxRrtjZT5J2h2qCX+P4yjy6U6oHkoZzK2s ops@example"

func identityInventory(profile, host string) string {
	return `appliance:
  interface: br0
  ipxe_dir: %DIR%/ipxe
  data_dir: %DIR%/data
profiles:
  web:
    image: web
` + profile + `hosts:
  node01:
    mac: 52:54:00:12:34:01
    profile: web
` + host
}

func TestIdentity(t *testing.T) {
	path := fixture(t, identityInventory(`    overlay: overlays/web
    vars: {rack: r1, role: web, port: 8080}
    authorized_keys: ["`+testKey+`"]
`, `    overlay: overlays/node01
    vars:
      role: db
`))
	dir := filepath.Dir(path)
	for _, d := range []string{"overlays/web", "overlays/node01"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h, p, _ := inv.Lookup(inv.Hosts["node01"].MAC)
	got := Merged(p, h)
	want := NodeIdentity{
		OverlayDirs:    []string{filepath.Join(dir, "overlays/web"), filepath.Join(dir, "overlays/node01")},
		Vars:           map[string]string{"rack": "r1", "role": "db", "port": "8080"},
		AuthorizedKeys: []string{testKey},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Merged (-want +got):\n%s", diff)
	}
}

func TestOverlayTemplateChecked(t *testing.T) {
	path := fixture(t, identityInventory("    overlay: ov\n    vars: {rack: r1}\n", "  node02:\n    mac: 52:54:00:12:34:02\n    profile: web\n    vars: {role: db}\n"))
	ov := filepath.Join(filepath.Dir(path), "ov")
	os.MkdirAll(filepath.Join(ov, "etc"), 0o755)
	os.WriteFile(filepath.Join(ov, "etc/role.tmpl"), []byte("{{.Vars.rack}} {{.Vars.role}}\n"), 0o644)
	_, err := Load(path)
	// node01 lacks the var role; node02 has it.
	want := "hosts.yaml:11: host node01: overlay template " + filepath.Join(ov, "etc/role.tmpl") + ":1:"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "node02") {
		t.Fatalf("error %v, want one line containing %q", err, want)
	}
}

func TestIdentityProblems(t *testing.T) {
	for _, c := range []struct{ name, profile, host, want string }{
		{"missing overlay", "    overlay: nowhere\n", "", "hosts.yaml:8: profile web: overlay: "},
		{"overlay is a file", "    overlay: vmlinuz\n", "", "is not a folder"},
		{"bad var name", "    vars: {1st: x}\n", "", `hosts.yaml:8: profile web: var name "1st"`},
		{"var not a string", "    vars: {a: [1, 2]}\n", "", "hosts.yaml:8: profile web: var a must be a string"},
		{"bad key", "", "    authorized_keys:\n      - " + testKey + "\n      - not a key\n", "hosts.yaml:14: host node01: authorized_keys entry 2 is not an SSH public key line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(fixture(t, identityInventory(c.profile, c.host)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
