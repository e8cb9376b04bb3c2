package inventory

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writePE writes a minimal PE32+ image, with a security directory (an
// Authenticode signature's place) when signed.
func writePE(t *testing.T, path string, signed bool) {
	t.Helper()
	var b bytes.Buffer
	dos := make([]byte, 64)
	copy(dos, "MZ")
	binary.LittleEndian.PutUint32(dos[0x3c:], 64)
	b.Write(dos)
	b.WriteString("PE\x00\x00")
	oh := pe.OptionalHeader64{Magic: 0x20b, NumberOfRvaAndSizes: 16, Subsystem: 10}
	if signed {
		oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY] = pe.DataDirectory{VirtualAddress: 512, Size: 8}
	}
	fh := pe.FileHeader{Machine: pe.IMAGE_FILE_MACHINE_AMD64, SizeOfOptionalHeader: uint16(binary.Size(oh))}
	binary.Write(&b, binary.LittleEndian, fh)
	binary.Write(&b, binary.LittleEndian, oh)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

const secureBootYAML = `appliance:
  interface: br0
  data_dir: %DIR%/data
  ipxe_dir: %DIR%/ipxe
  shim: %DIR%/shimx64.efi.signed
  grub: %DIR%/grubnetx64.efi.signed
profiles:
  web:
    image: web
    secure_boot: true
  plain:
    image: web
  signed:
    kernel: %DIR%/signed.efi
    secure_boot: true
hosts:
  a:
    mac: 52:54:00:00:00:01
    profile: web
  b:
    mac: 52:54:00:00:00:02
    profile: web
    secure_boot: false
  c:
    mac: 52:54:00:00:00:03
    profile: plain
    secure_boot: true
  d:
    mac: 52:54:00:00:00:04
    profile: plain
  e:
    mac: 52:54:00:00:00:05
    profile: signed
`

// secureBootFixture writes secureBootYAML, edited by replace (old, new
// pairs), beside signed and unsigned kernels and the two boot loaders.
func secureBootFixture(t *testing.T, replace ...string) string {
	path := fixture(t, strings.NewReplacer(replace...).Replace(secureBootYAML))
	dir := filepath.Dir(path)
	writePE(t, filepath.Join(dir, "signed.efi"), true)
	writePE(t, filepath.Join(dir, "unsigned.efi"), false)
	for _, f := range []string{"shimx64.efi.signed", "grubnetx64.efi.signed"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestSecureBoot(t *testing.T) {
	inv, err := Load(secureBootFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(inv.File)
	if inv.Appliance.Shim != filepath.Join(dir, "shimx64.efi.signed") || inv.Appliance.Grub != filepath.Join(dir, "grubnetx64.efi.signed") {
		t.Errorf("shim %q, grub %q", inv.Appliance.Shim, inv.Appliance.Grub)
	}
	want := map[string]bool{"a": true, "b": false, "c": true, "d": false, "e": true}
	for name, sb := range want {
		if got := inv.Hosts[name].SecureBoot; got != sb {
			t.Errorf("host %s: SecureBoot = %v, want %v", name, got, sb)
		}
	}

	// Unknown hosts take their profile's.
	inv, err = Load(secureBootFixture(t, "  interface: br0\n", "  interface: br0\n  unknown_hosts: web\n"))
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := ParseMAC("52:54:00:99:99:99")
	if h, _, ok := inv.Lookup(mac); !ok || !h.SecureBoot {
		t.Errorf("unknown host of a secure_boot profile: %+v, %v", h, ok)
	}

	// The defaults are Debian's packages' paths.
	inv, err = Load(fixture(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Appliance.Shim != DefaultShim || inv.Appliance.Grub != DefaultGrub {
		t.Errorf("defaults: shim %q, grub %q", inv.Appliance.Shim, inv.Appliance.Grub)
	}
}

func TestSecureBootProblems(t *testing.T) {
	tests := []struct {
		name    string
		replace []string
		want    []string // "LINE: message fragment"
	}{
		{"not a boolean", []string{"    secure_boot: false\n", "    secure_boot: no-thanks\n"}, []string{`23: host b: secure_boot must be true or false`}},
		{"quoted", []string{"    image: web\n    secure_boot: true\n", "    image: web\n    secure_boot: \"true\"\n"}, []string{`10: profile web: secure_boot must be true or false`}},
		{"shim missing", []string{"shimx64.efi.signed\n", "nope.efi\n"}, []string{`10: secure_boot needs appliance.shim: `, `nope.efi does not exist (Debian package shim-signed)`}},
		{"grub a folder", []string{"%DIR%/grubnetx64.efi.signed", "%DIR%/ipxe"}, []string{`10: secure_boot needs appliance.grub: `, `ipxe is not a regular file`}},
		{"unsigned direct kernel", []string{"signed.efi", "unsigned.efi"}, []string{`15: profile signed: secure_boot: kernel `, `unsigned.efi carries no signature`}},
		{"kernel not PE", []string{"signed.efi", "vmlinuz"}, []string{`15: profile signed: secure_boot: kernel `, `vmlinuz is not an EFI (PE) image`}},
		{"host on an unsigned direct profile", []string{
			"    kernel: %DIR%/signed.efi\n    secure_boot: true\n", "    kernel: %DIR%/unsigned.efi\n",
			"    profile: signed\n", "    profile: signed\n    secure_boot: true\n"},
			[]string{`33: host e: secure_boot with profile signed: kernel `}},
		{"cmdline grub would expand", []string{"    image: web\n    secure_boot: true\n", "    image: web\n    cmdline: root=$root\n    secure_boot: true\n"}, []string{`11: profile web: secure_boot: cmdline "root=$root" holds characters grub interprets`}},
		{"unknown key", []string{"secure_boot: false", "secureboot: false"}, []string{`23: unknown key "secureboot" in host b`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := secureBootFixture(t, tc.replace...)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load accepted a broken inventory")
			}
			text := err.Error()
			for _, w := range tc.want {
				if line, _, _ := strings.Cut(w, ":"); isDigits(line) && !strings.Contains(text, path+":"+w) {
					t.Errorf("problems:\n%s\nwant %q at line %s", text, w, line)
				} else if !strings.Contains(text, w) {
					t.Errorf("problems:\n%s\nwant one matching %q", text, w)
				}
			}
		})
	}
	// Without a host or profile asking for it, missing boot loaders are
	// no problem.
	path := secureBootFixture(t, "    secure_boot: true\n", "", "shimx64.efi.signed\n", "nope.efi\n")
	if _, err := Load(path); err != nil {
		t.Errorf("no secure_boot anywhere, shim missing: %v", err)
	}
}
