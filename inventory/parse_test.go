package inventory

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixture writes hosts.yaml (with %DIR% replaced by a folder holding a
// kernel, an initrd and an iPXE folder) and returns its path.
func fixture(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"vmlinuz", "rescue.cpio.gz", "ipxe/undionly.kpxe"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "%DIR%", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const good = `appliance:
  interface: br0
  address: 10.99.0.1
  http_port: 8080
  data_dir: %DIR%/data
  ipxe_dir: %DIR%/ipxe
profiles:
  rescue:
    kernel: %DIR%/vmlinuz
    initrd: [rescue.cpio.gz]
    cmdline: console=ttyS0
hosts:
  rack1-node01:
    mac: 52:54:00:12:34:01
    profile: rescue
  rack1-node02:
    mac: 52-54-00-12-34-02
    profile: rescue
`

func TestParseGood(t *testing.T) {
	path := fixture(t, good)
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	a := inv.Appliance
	if a.Interface != "br0" || a.Address.String() != "10.99.0.1" || a.HTTPPort != 8080 {
		t.Fatalf("appliance = %+v", a)
	}
	if want := filepath.Join(dir, "data", "node-initrd.cpio.gz"); a.NodeInitrd != want {
		t.Errorf("node_initrd default %q, want %q", a.NodeInitrd, want)
	}
	if want := filepath.Join(dir, "data", "state", "boot-signing.key"); a.SigningKey != want {
		t.Errorf("signing_key default %q, want %q", a.SigningKey, want)
	}
	if a.UnknownHosts != "ignore" || a.BIOSBinary != "undionly.kpxe" || a.UEFIBinary != "ipxe.efi" || a.SeedRestCopies != DefaultSeedRestCopies {
		t.Errorf("defaults not applied: %+v", a)
	}
	for _, n := range []int{0, 3} {
		inv, err := Load(fixture(t, strings.Replace(good, "  http_port", "  seed_rest_copies: "+strconv.Itoa(n)+"\n  http_port", 1)))
		if err != nil || inv.Appliance.SeedRestCopies != n {
			t.Errorf("seed_rest_copies: %d: got %+v, %v", n, inv, err)
		}
	}
	if inv, err := Load(fixture(t, strings.Replace(good, "  http_port", "  tftp_per_client: 32\n  http_port", 1))); err != nil || inv.Appliance.TFTPPerClient != 32 {
		t.Errorf("tftp_per_client: 32: got %+v, %v", inv, err)
	}
	p := inv.Profiles["rescue"]
	if diff := cmp.Diff([]string{filepath.Join(dir, "rescue.cpio.gz")}, p.Initrd); diff != "" {
		t.Errorf("relative initrd not resolved against the file's folder: %s", diff)
	}
	mac, _ := ParseMAC("52:54:00:12:34:02")
	h, pr, ok := inv.Lookup(mac)
	if !ok || h.Name != "rack1-node02" || pr.Name != "rescue" {
		t.Fatalf("Lookup(dash-separated MAC) = %v %v %v", h, pr, ok)
	}
	unknown, _ := ParseMAC("52:54:00:99:99:99")
	if _, _, ok := inv.Lookup(unknown); ok {
		t.Fatal("unknown MAC booted with unknown_hosts: ignore")
	}
}

// TestSigningKey: signing_key is resolved against the file's folder, may
// name a file that does not exist yet (it is created on first use), and may
// not name a folder.
func TestSigningKey(t *testing.T) {
	path := fixture(t, strings.Replace(good, "  ipxe_dir:", "  signing_key: keys/boot.key\n  ipxe_dir:", 1))
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(path), "keys", "boot.key"); inv.Appliance.SigningKey != want {
		t.Fatalf("signing_key %q, want %q", inv.Appliance.SigningKey, want)
	}
	os.MkdirAll(filepath.Join(filepath.Dir(path), "keys", "boot.key"), 0o755)
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), "hosts.yaml:1: appliance.signing_key: "+filepath.Join(filepath.Dir(path), "keys", "boot.key")+" is not a regular file") {
		t.Fatalf("signing_key naming a folder: %v", err)
	}
}

func TestUnknownHostsProfile(t *testing.T) {
	inv, err := Load(fixture(t, strings.Replace(good, "  ipxe_dir:", "  unknown_hosts: rescue\n  ipxe_dir:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	unknown, _ := ParseMAC("52:54:00:99:99:99")
	h, p, ok := inv.Lookup(unknown)
	if !ok || p.Name != "rescue" || h.Name != "unknown-525400999999" {
		t.Fatalf("Lookup(unknown) = %+v %v %v", h, p, ok)
	}
}

// TestProblems checks that each mistake is reported at its line, with a
// message that says what is wrong.
func TestProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // "LINE: message fragment"
	}{
		{"unknown top key", good + "extra: 1\n", []string{`19: unknown key "extra" in the inventory`}},
		{"unknown appliance key", strings.Replace(good, "  http_port: 8080\n", "  http_prot: 8080\n", 1), []string{`4: unknown key "http_prot" in appliance`}},
		{"misspelt signing_key", strings.Replace(good, "  http_port: 8080\n", "  signing_keys: k\n", 1), []string{`4: unknown key "signing_keys" in appliance (known: interface, address, http_port, data_dir, ipxe_dir, node_initrd, signing_key,`}},
		{"signing_key not a string", strings.Replace(good, "  http_port: 8080\n", "  signing_key: [a, b]\n", 1), []string{`4: appliance.signing_key must be a string`}},
		{"unknown host key", strings.Replace(good, "    profile: rescue\n  rack1-node02", "    profle: rescue\n  rack1-node02", 1), []string{`15: unknown key "profle" in host rack1-node01`, `13: host rack1-node01: profile is required`}},
		{"duplicate MAC", strings.Replace(good, "52-54-00-12-34-02", "52:54:00:12:34:01", 1), []string{`17: host rack1-node02: MAC 52:54:00:12:34:01 is already used by host rack1-node01 (line 13)`}},
		{"duplicate name", good + "  rack1-node01:\n    mac: 52:54:00:12:34:03\n    profile: rescue\n", []string{`19: duplicate key "rack1-node01" in hosts (first at line 13)`}},
		{"malformed MAC", strings.Replace(good, "52:54:00:12:34:01", "52:54:00:12:34", 1), []string{`14: host rack1-node01: malformed MAC "52:54:00:12:34"`}},
		{"missing MAC", strings.Replace(good, "    mac: 52:54:00:12:34:01\n", "", 1), []string{`13: host rack1-node01: mac is required`}},
		{"missing profile", strings.Replace(good, "profile: rescue\n  rack1-node02", "profile: web\n  rack1-node02", 1), []string{`13: host rack1-node01: profile "web" does not exist`}},
		{"missing kernel file", strings.Replace(good, "%DIR%/vmlinuz", "%DIR%/nope", 1), []string{`8: profile rescue: `, `nope does not exist`}},
		{"missing initrd file", strings.Replace(good, "[rescue.cpio.gz]", "[rescue.cpio.gz, gone.img]", 1), []string{`gone.img does not exist`}},
		{"kernel and image", strings.Replace(good, "    cmdline: console=ttyS0\n", "    cmdline: console=ttyS0\n    image: web\n", 1), []string{`8: profile rescue: kernel and image exclude each other`}},
		{"no kernel", strings.Replace(good, "    kernel: %DIR%/vmlinuz\n", "", 1), []string{`8: profile rescue: needs either kernel`}},
		{"bad port", strings.Replace(good, "8080", "80800", 1), []string{`4: appliance.http_port "80800" is not a port number`}},
		{"bad admin_listen", strings.Replace(good, "  http_port", "  admin_listen: 9090\n  http_port", 1), []string{`4: appliance.admin_listen "9090" is not ADDRESS:PORT`}},
		{"admin_listen host", strings.Replace(good, "  http_port", "  admin_listen: admin:9090\n  http_port", 1), []string{`4: appliance.admin_listen "admin:9090": "admin" is not an IP address`}},
		{"bad read_auth", strings.Replace(good, "  http_port", "  read_auth: yes\n  http_port", 1), []string{`4: appliance.read_auth "yes" is neither "none" nor "token"`}},
		{"bad tftp_per_client", strings.Replace(good, "  http_port", "  tftp_per_client: 0\n  http_port", 1), []string{`4: appliance.tftp_per_client "0" is not a number of transfers (1-64)`}},
		{"bad seed_rest_copies", strings.Replace(good, "  http_port", "  seed_rest_copies: -1\n  http_port", 1), []string{`4: appliance.seed_rest_copies "-1" is not a number of nodes`}},
		{"bad address", strings.Replace(good, "10.99.0.1", "10.99.0", 1), []string{`3: appliance.address "10.99.0" is not an IPv4 address`}},
		{"no interface", strings.Replace(good, "  interface: br0\n", "", 1), []string{`1: appliance.interface is required`}},
		{"no appliance", good[strings.Index(good, "profiles:"):], []string{`appliance section is required`}},
		{"unknown_hosts profile", strings.Replace(good, "  http_port", "  unknown_hosts: nosuch\n  http_port", 1), []string{`appliance.unknown_hosts "nosuch" is neither "ignore" nor a profile`}},
		{"bad hostname", strings.Replace(good, "rack1-node01:", "rack1_node01:", 1), []string{`13: host name "rack1_node01" is not a valid hostname`}},
		{"yaml syntax", strings.Replace(good, "    profile: rescue\n  rack1-node02", "    profile: [rescue\n  rack1-node02", 1), []string{`invalid YAML`}},
		{"tabs", "appliance:\n\tinterface: br0\n", []string{`2: invalid YAML`}},
		{"ipxe dir missing", strings.Replace(good, "%DIR%/ipxe", "%DIR%/noipxe", 1), []string{`appliance.ipxe_dir: `, `noipxe does not exist`}},
		{"multi-line cmdline", strings.Replace(good, "cmdline: console=ttyS0", "cmdline: \"console=ttyS0\\nshell\"", 1), []string{`11: profile rescue: cmdline must be a single line`}},
		{"hosts not a mapping", strings.Replace(good[:strings.Index(good, "hosts:")], "", "", 1) + "hosts: [a, b]\n", []string{`12: hosts must be a mapping`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := fixture(t, tc.yaml)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load accepted a broken inventory")
			}
			ierr, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			text := ierr.Error()
			for _, line := range strings.Split(text, "\n") {
				if !strings.HasPrefix(line, path+":") {
					t.Errorf("line %q does not start with FILE:", line)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(text, path+":"+w) && !strings.Contains(text, w) {
					t.Errorf("problems:\n%s\nwant one matching %q", text, w)
				}
				if line, _, found := strings.Cut(w, ":"); found && isDigits(line) && !strings.Contains(text, path+":"+w) {
					t.Errorf("problems:\n%s\nwant %q at line %s", text, w, line)
				}
			}
		})
	}
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// FuzzParse: no input may crash the parser, and an accepted inventory must
// be internally consistent.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755)
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("x"), 0o644)
	f.Add([]byte(strings.ReplaceAll(good, "%DIR%", dir)))
	f.Add([]byte("appliance: {interface: br0}\n"))
	f.Add([]byte("appliance:\n  interface: [\n"))
	f.Add([]byte("hosts:\n  a:\n    mac: zz\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(filepath.Join(dir, "hosts.yaml"), data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for name, h := range inv.Hosts {
			if inv.Profiles[h.Profile] == nil {
				t.Fatalf("accepted host %s with missing profile %q", name, h.Profile)
			}
			if got, _, ok := inv.Lookup(h.MAC); !ok || got != h {
				t.Fatalf("host %s not found by its MAC", name)
			}
		}
	})
}

// TestExample: the repository's example hosts.yaml loads without a
// problem: every file it names is one Debian's ipxe package installs.
func TestExample(t *testing.T) {
	if _, err := Load(filepath.Join("..", "hosts.yaml")); err != nil {
		t.Fatalf("example hosts.yaml: %v", err)
	}
}

// imageProfile is good with an image profile "web" holding extra lines
// (at line 13 onwards) that rack1-node01 boots.
func imageProfile(extra string) string {
	return strings.Replace(strings.Replace(good, "hosts:\n", "  web:\n    image: web\n"+extra+"hosts:\n", 1),
		"profile: rescue\n  rack1-node02", "profile: web\n  rack1-node02", 1)
}

// TestCacheFallback: cache_fallback defaults to fail for a profile with a
// cache device, takes fail or ram, and is refused at its line otherwise.
func TestCacheFallback(t *testing.T) {
	tests := []struct {
		name, extra string
		want        string // the profile's CacheFallback, when accepted
		problem     string // "LINE: message fragment", when refused
	}{
		{name: "no cache", extra: "", want: ""},
		{name: "cache, default", extra: "    cache: /dev/vda\n", want: "fail"},
		{name: "fail", extra: "    cache: /dev/vda\n    cache_fallback: fail\n", want: "fail"},
		{name: "ram", extra: "    cache: /dev/vda\n    cache_fallback: ram\n", want: "ram"},
		{name: "unknown value", extra: "    cache: /dev/vda\n    cache_fallback: disk\n",
			problem: `15: profile web: cache_fallback "disk" is neither "fail" nor "ram"`},
		{name: "upper case", extra: "    cache: /dev/vda\n    cache_fallback: RAM\n",
			problem: `15: profile web: cache_fallback "RAM" is neither "fail" nor "ram"`},
		{name: "empty", extra: "    cache: /dev/vda\n    cache_fallback: ''\n",
			problem: `15: profile web: cache_fallback "" is neither "fail" nor "ram"`},
		{name: "not a string", extra: "    cache: /dev/vda\n    cache_fallback: [ram]\n",
			problem: `15: cache_fallback must be a string`},
		{name: "without cache", extra: "    cache_fallback: ram\n",
			problem: `14: profile web: cache_fallback needs a cache device`},
		{name: "direct profile", extra: "",
			problem: `12: profile rescue: cache_fallback needs a cache device`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := imageProfile(tc.extra)
			if tc.name == "direct profile" {
				yaml = strings.Replace(good, "    cmdline: console=ttyS0\n", "    cmdline: console=ttyS0\n    cache_fallback: ram\n", 1)
			}
			path := fixture(t, yaml)
			inv, err := Load(path)
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), path+":"+tc.problem) {
					t.Fatalf("err %v\nwant %s:%s", err, path, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := inv.Profiles["web"].CacheFallback; got != tc.want {
				t.Fatalf("CacheFallback %q, want %q", got, tc.want)
			}
		})
	}
}
