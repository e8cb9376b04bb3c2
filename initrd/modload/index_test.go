package modload

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"pci:v00001AF4d00001000sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d00001000sv*sd*bc*sc*i*", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", false},
		{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", true},
		{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i00", false},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000011v00001AF4", false},
		{"scsi:t-0x00*", "scsi:t-0x00", true},
		{"scsi:t-0x0[07]*", "scsi:t-0x07", true},
		{"scsi:t-0x0[07]*", "scsi:t-0x05", false},
		{"scsi:t-0x0[!07]*", "scsi:t-0x05", true},
		{"scsi:t-0x0[^07]*", "scsi:t-0x07", false},
		{"x[a-c]y", "xby", true},
		{"x[a-c]y", "xdy", false},
		{"x[]]y", "x]y", true},
		{"x[!]]y", "x]y", false},
		{"x[ab", "x[ab", true}, // no ']': a literal '['
		{"x[ab", "xa", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{`a\*c`, "a*c", true},
		{`a\*c`, "abc", false},
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a*b*c", "aXXbYYbZZc", true},
		{"a*b*c", "aXXbYYbZZ", false},
		{"dmi*:svnQEMU:*", "dmi:bvnSeaBIOS:bvr1.16:svnQEMU:pnStandardPC", true},
		{"acpi*:PNP0501:*", "acpi:PNP0501:", true},
		{"*/x", "a/b/x", true}, // '/' is no special byte for modaliases
	} {
		if got := Glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

const testAliases = `# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias scsi:t-0x00* sd_mod
alias fs-squashfs squashfs
alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio-pci
`

const testDep = `kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/block/virtio_blk.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
/lib/modules/6.1.0-57-cloud-amd64/kernel/fs/squashfs/squashfs.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/block/loop.ko:
kernel/drivers/net/ethernet/absent/absent.ko:
kernel/drivers/net/needs-absent.ko: kernel/drivers/net/ethernet/absent/absent.ko
`

func mustParse(t *testing.T) ([]Alias, map[string]Module) {
	t.Helper()
	a, err := ParseAliases(strings.NewReader(testAliases))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDep(strings.NewReader(testDep))
	if err != nil {
		t.Fatal(err)
	}
	return a, d
}

func TestParse(t *testing.T) {
	a, d := mustParse(t)
	if len(a) != 8 || a[7] != (Alias{"pci:v00001AF4d00001000sv*sd*bc*sc*i*", "virtio_pci"}) {
		t.Errorf("aliases: %d, last %+v; want 8, the last one's module as virtio_pci", len(a), a[len(a)-1])
	}
	if diff := cmp.Diff(Module{Path: "kernel/fs/squashfs/squashfs.ko"}, d["squashfs"]); diff != "" {
		t.Errorf("squashfs (absolute path in modules.dep): %s", diff)
	}
	if diff := cmp.Diff([]string{"net_failover", "failover"}, d["virtio_net"].Deps); diff != "" {
		t.Errorf("virtio_net's dependencies: %s", diff)
	}
	if _, ok := d["needs_absent"]; !ok {
		t.Error("needs-absent.ko is not known as needs_absent")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ what, in, want string }{
		{"alias", "alias pci:v* virtio_pci\nalias only-two\n", "modules.alias line 2"},
		{"alias", "options virtio_pci foo=1\n", "modules.alias line 1"},
		{"dep", "kernel/a.ko:\nno colon here\n", "modules.dep line 2"},
		{"dep", "kernel/a.txt:\n", "modules.dep line 1"},
		{"dep", ".ko:\n", "modules.dep line 1"},
	} {
		var err error
		if tc.what == "alias" {
			_, err = ParseAliases(strings.NewReader(tc.in))
		} else {
			_, err = ParseDep(strings.NewReader(tc.in))
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v, want one naming %q", tc.what, tc.in, err, tc.want)
		}
	}
}

func TestWanted(t *testing.T) {
	a, _ := mustParse(t)
	for _, tc := range []struct {
		name       string
		modaliases []string
		extra      []string
		want       []string
	}{
		{"nothing", nil, nil, []string{}},
		{"virtio net NIC: virtio_pci once (two aliases)", []string{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}, nil, []string{"virtio_pci"}},
		{"virtio devices", []string{"virtio:d00000001v00001AF4", "virtio:d00000002v00001AF4", "virtio:d00000004v00001AF4"}, nil, []string{"virtio_blk", "virtio_net"}},
		{"e1000 and AHCI", []string{"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"}, nil, []string{"ahci", "e1000"}},
		{"no match, extras", []string{"platform:serial8250"}, []string{"loop", "sd-mod"}, []string{"loop", "sd_mod"}},
	} {
		if diff := cmp.Diff(tc.want, Wanted(a, tc.modaliases, tc.extra)); diff != "" {
			t.Errorf("%s: %s", tc.name, diff)
		}
	}
}

func TestClosure(t *testing.T) {
	_, d := mustParse(t)
	have := func(m Module) bool { return !strings.Contains(m.Path, "/absent/") }
	for _, tc := range []struct {
		name        string
		want        []string
		done        map[string]bool
		order, skip []string
	}{
		{"dependencies first", []string{"virtio_net", "virtio_pci"}, nil,
			[]string{"failover", "net_failover", "virtio_net", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio_pci"}, nil},
		{"shared dependencies once", []string{"ahci", "sd_mod"}, nil,
			[]string{"scsi_common", "scsi_mod", "libata", "libahci", "ahci", "sd_mod"}, nil},
		{"loaded before: not again", []string{"sd_mod"}, map[string]bool{"scsi_mod": true, "scsi_common": true},
			[]string{"sd_mod"}, nil},
		{"a failed dependency skips its users", []string{"sd_mod", "loop"}, map[string]bool{"scsi_mod": false},
			[]string{"scsi_common", "loop"}, []string{"scsi_mod", "sd_mod"}},
		{"not in the archive, or built in", []string{"needs_absent", "ext4", "loop"}, nil,
			[]string{"loop"}, []string{"absent", "needs_absent", "ext4"}},
	} {
		order, skip := Closure(d, tc.want, tc.done, have)
		if diff := cmp.Diff(tc.order, order); diff != "" {
			t.Errorf("%s: order: %s", tc.name, diff)
		}
		if diff := cmp.Diff(tc.skip, skip); diff != "" {
			t.Errorf("%s: skipped: %s", tc.name, diff)
		}
		pos := map[string]int{}
		for i, n := range order {
			pos[n] = i
		}
		for _, n := range order {
			for _, dep := range d[n].Deps {
				if p, ok := pos[dep]; ok && p > pos[n] {
					t.Errorf("%s: %s before its dependency %s", tc.name, n, dep)
				}
			}
		}
	}
}

func TestIsNetwork(t *testing.T) {
	for m, want := range map[string]bool{
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00": true,  // virtio-net
		"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00": true,  // e1000
		"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00": false, // virtio-blk
		"pci:v0000BC02d00001000sv00001AF4sd00000001bc01sc00i00": false, // "BC02" in an ID is upper case
		"virtio:d00000001v00001AF4":                             true,
		"virtio:d00000002v00001AF4":                             false,
		"virtio:d00000010v00001AF4":                             false,
		"usb:v0BDAp8153d3000dc00dsc00dp00icFFisc00ip00in00":     false,
	} {
		if got := IsNetwork(m); got != want {
			t.Errorf("IsNetwork(%q) = %v, want %v", m, got, want)
		}
	}
}
