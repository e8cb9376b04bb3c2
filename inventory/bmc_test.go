package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// bmcFixture is good with a profile-level bmc default (%PROFILE%) and a
// host bmc (%HOST%) on rack1-node01; it writes pw (0600) and pw-open (0644)
// beside hosts.yaml.
func bmcFixture(t *testing.T, profile, host string, host2 ...string) string {
	t.Helper()
	y := strings.Replace(good, "    cmdline: console=ttyS0\n", "    cmdline: console=ttyS0\n"+profile, 1)
	y = strings.Replace(y, "    profile: rescue\n  rack1-node02", "    profile: rescue\n"+host+"  rack1-node02", 1)
	y += strings.Join(host2, "")
	path := fixture(t, y)
	dir := filepath.Dir(path)
	for name, mode := range map[string]os.FileMode{"pw": 0o600, "pw-open": 0o644, "pw-group": 0o640} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("secret\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, name), mode) // umask
	}
	return path
}

func TestBMCMerge(t *testing.T) {
	profile := "    bmc:\n      type: redfish\n      user: admin\n      password_file: pw\n      insecure_tls: true\n"
	host := "    bmc:\n      address: 10.0.0.5:8443\n      user: root\n"
	path := bmcFixture(t, profile, host, "    bmc: {address: 10.0.0.6}\n")
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	want := &BMC{Type: BMCRedfish, Address: "10.0.0.5:8443", User: "root", PasswordFile: filepath.Join(dir, "pw"), InsecureTLS: true}
	if diff := cmp.Diff(want, inv.Hosts["rack1-node01"].BMC, cmpopts.IgnoreUnexported(BMC{})); diff != "" {
		t.Errorf("rack1-node01 BMC (host fields win, profile fills in) -want +got:\n%s", diff)
	}
	if b := inv.Hosts["rack1-node02"].BMC; b.Address != "10.0.0.6" || b.User != "admin" {
		t.Errorf("rack1-node02 BMC = %+v", b)
	}
	// rack1-node02 inherits the profile's bmc but has no address.
	if _, err := Load(bmcFixture(t, profile, "")); err == nil || !strings.Contains(err.Error(), "host rack1-node02: bmc.address is required") {
		t.Errorf("profile bmc without address for a host: %v", err)
	}
	if got := want.RedfishURL(); got != "https://10.0.0.5:8443" {
		t.Errorf("RedfishURL = %q", got)
	}
	if pw, err := inv.Hosts["rack1-node01"].BMC.Password(); err != nil || pw != "secret" {
		t.Errorf("Password = %q, %v", pw, err)
	}
	if got := inv.HostsWithBMC(); !cmp.Equal(got, []string{"rack1-node01", "rack1-node02"}) {
		t.Errorf("HostsWithBMC = %v", got)
	}
	// insecure_tls: false on the host wins over the profile's true.
	inv, err = Load(bmcFixture(t, profile, host+"      insecure_tls: false\n", "    bmc: {address: 10.0.0.6}\n"))
	if err != nil || inv.Hosts["rack1-node01"].BMC.InsecureTLS {
		t.Errorf("host insecure_tls: false did not win: %v", err)
	}
	ipmi := &BMC{Address: "10.0.0.7"}
	if h, p := ipmi.IPMIHostPort(); h != "10.0.0.7" || p != 623 {
		t.Errorf("IPMIHostPort default = %s %d", h, p)
	}
}

func TestBMCProblems(t *testing.T) {
	full := "    bmc:\n      type: ipmi\n      address: 10.0.0.5\n      user: admin\n      password_file: pw\n"
	tests := []struct {
		name, profile, host string
		want                []string // "LINE: fragment"
	}{
		{"inline password", "", strings.Replace(full, "password_file: pw", "password: hunter2", 1), []string{
			`20: host rack1-node01: bmc.password: inline passwords are not accepted; write the password to a file (chmod 600) and name it with bmc.password_file`,
			`17: host rack1-node01: bmc.password_file is required`}},
		{"world-readable password file", "", strings.Replace(full, "password_file: pw", "password_file: pw-open", 1), []string{
			`20: host rack1-node01: bmc.password_file `, `pw-open is readable by group or others (mode 0644); run: chmod 600 `}},
		{"group-readable password file in the profile", "    bmc:\n      password_file: pw-group\n", strings.Replace(full, "      password_file: pw\n", "", 1), []string{
			`13: profile rescue: bmc.password_file `, `(mode 0640); run: chmod 600 `}},
		{"missing password file", "", strings.Replace(full, "password_file: pw", "password_file: nope", 1), []string{`20: host rack1-node01: bmc.password_file: `, `nope does not exist`}},
		{"bad type", "", strings.Replace(full, "type: ipmi", "type: ilo", 1), []string{`17: host rack1-node01: bmc.type "ilo" is neither "ipmi" nor "redfish"`}},
		{"unknown key", "", full + "      pasword_file: x\n", []string{`21: unknown key "pasword_file" in host rack1-node01 bmc (known: type, address, user, password_file, insecure_tls)`}},
		{"no type", "", strings.Replace(full, "      type: ipmi\n", "", 1), []string{`17: host rack1-node01: bmc.type is required`}},
		{"bad ipmi address", "", strings.Replace(full, "10.0.0.5", "10.0.0.5:99999", 1), []string{`18: host rack1-node01: bmc.address "10.0.0.5:99999" is not host or host:port`}},
		{"plain http redfish", "", strings.Replace(strings.Replace(full, "10.0.0.5", "http://10.0.0.5", 1), "ipmi", "redfish", 1), []string{`18: host rack1-node01: bmc.address "http://10.0.0.5": Redfish is spoken over https only`}},
		{"insecure_tls not a bool", "", strings.Replace(full, "ipmi", "redfish", 1) + "      insecure_tls: yes please\n", []string{`21: host rack1-node01: bmc.insecure_tls "yes please" is neither true nor false`}},
		{"insecure_tls on ipmi", "", full + "      insecure_tls: true\n", []string{`21: host rack1-node01: bmc.insecure_tls applies to redfish BMCs only`}},
		{"bmc not a mapping", "", "    bmc: 10.0.0.5\n", []string{`16: host rack1-node01 bmc must be a mapping`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := bmcFixture(t, tc.profile, tc.host)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load accepted a broken bmc")
			}
			text := err.Error()
			for _, w := range tc.want {
				line, _, _ := strings.Cut(w, ":")
				if isDigits(line) && !strings.Contains(text, path+":"+w) || !strings.Contains(text, w) {
					t.Errorf("problems:\n%s\nwant one matching %q", text, w)
				}
			}
			if strings.Contains(text, "hunter2") {
				t.Errorf("an inline password is echoed in the error:\n%s", text)
			}
		})
	}
}

// FuzzParseBMC: no bmc mapping crashes the parser, and an accepted host
// BMC is complete.
func FuzzParseBMC(f *testing.F) {
	dir := f.TempDir()
	os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755)
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("x\n"), 0o600)
	base := strings.ReplaceAll(good, "%DIR%", dir)
	f.Add("{type: ipmi, address: 10.0.0.5, user: a, password_file: pw}")
	f.Add("{type: redfish, address: 'https://[::1]:8443/', user: a, password_file: pw, insecure_tls: true}")
	f.Add("{password: x}")
	f.Add("[1, 2]")
	f.Fuzz(func(t *testing.T, bmc string) {
		y := strings.Replace(base, "    profile: rescue\n  rack1-node02", "    profile: rescue\n    bmc: "+bmc+"\n  rack1-node02", 1)
		inv, err := Parse(filepath.Join(dir, "hosts.yaml"), []byte(y))
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if b := inv.Hosts["rack1-node01"].BMC; b != nil && (b.Type == "" || b.Address == "" || b.User == "" || b.PasswordFile == "") {
			t.Fatalf("accepted an incomplete BMC %+v", b)
		}
	})
}
