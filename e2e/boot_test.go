package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"moobi/lab"
)

// TestPXEBootDirect is the boot path end to end: dnsmasq hands out
// addresses, moobi answers as a proxy; a SeaBIOS VM (iPXE ROM) and an OVMF
// VM using OVMF's own UEFI PXE (TFTP of ipxe.efi) both boot a direct-netboot
// profile whose initramfs prints a marker; a VM whose MAC is not in
// hosts.yaml gets a lease from the site DHCP server but no boot answer.
func TestPXEBootDirect(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", lab.OVMFCode, "/usr/lib/ipxe/ipxe.efi")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	bin := moobiBinary(t)
	kernel, err := lab.Kernel(ctx, lab.TestCacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	l := lab.NewForTest(t, ctx)
	marker := "MOOBI-E2E-" + randomHex(6)
	initrd := filepath.Join(l.Dir(), "marker.cpio.gz")
	if err := lab.BuildInitramfs(initrd, lab.MarkerInit(marker), nil); err != nil {
		t.Fatal(err)
	}
	const (
		biosMAC    = "52:54:00:e2:e0:01"
		uefiMAC    = "52:54:00:e2:e0:02"
		unknownMAC = "52:54:00:e2:e0:99"
	)
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	writeFile(t, cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %[1]s/data
  ipxe_dir: /usr/lib/ipxe
profiles:
  marker:
    kernel: %[2]s
    initrd: [%[3]s]
    cmdline: console=ttyS0 panic=-1 moobi.test=pxe
hosts:
  bios-node:
    mac: %[4]s
    profile: marker
  uefi-node:
    mac: %[5]s
    profile: marker
`, l.Dir(), kernel, initrd, biosMAC, uefiMAC))
	app := startAppliance(t, ctx, l, bin, cfg)

	vms := map[string]*lab.VM{}
	for _, o := range []lab.VMOptions{
		{Name: "bios", MAC: biosMAC, Firmware: lab.BIOS},
		{Name: "uefi", MAC: uefiMAC, Firmware: lab.UEFI},
		{Name: "unknown", MAC: unknownMAC, Firmware: lab.BIOS},
	} {
		vm, err := l.StartVM(ctx, o)
		if err != nil {
			t.Fatalf("start %s VM: %v", o.Name, err)
		}
		vms[o.Name] = vm
	}
	start := time.Now()
	var g errgroup.Group
	for _, name := range []string{"bios", "uefi"} {
		vm := vms[name]
		g.Go(func() error {
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
			defer wcancel()
			if err := vm.WaitConsole(wctx, marker); err != nil {
				return fmt.Errorf("%s VM never printed the marker: %w\nconsole:\n%s", name, err, lab.Tail(vm.Console(), 30))
			}
			t.Logf("%s VM booted the profile in %v", name, time.Since(start).Round(100*time.Millisecond))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bios", "uefi"} {
		if c := vms[name].Console(); !strings.Contains(c, "initrd=marker.cpio.gz") || !strings.Contains(c, "moobi.test=pxe") {
			t.Errorf("%s VM's kernel command line lacks the profile's arguments:\n%s", name, lab.Tail(c, 10))
		}
	}

	// The UEFI VM went through OVMF's own PXE: a proxy answer naming
	// ipxe.efi (OVMF takes it from the offer on 67, honouring option 43's
	// discovery control; firmware that does not asks port 4011), TFTP of
	// ipxe.efi, then iPXE asked again and got the script.
	entries := app.Entries()
	want := map[string]bool{}
	for _, e := range entries {
		switch {
		case e.Msg == "proxy DHCP reply" && e.MAC == uefiMAC && e.BootFile == "ipxe.efi":
			want["uefi ipxe.efi"] = true
		case e.Msg == "TFTP transfer done" && e.File == "ipxe.efi":
			want["tftp ipxe.efi"] = true
		case e.Msg == "proxy DHCP reply" && e.MAC == biosMAC && strings.HasSuffix(e.BootFile, "/boot/"+biosMAC+".ipxe"):
			want["bios script url"] = true
		case e.Msg == "http request" && e.MAC == uefiMAC && e.Status == 200:
			want["uefi script fetched"] = true
		}
	}
	for _, w := range []string{"uefi ipxe.efi", "tftp ipxe.efi", "bios script url", "uefi script fetched"} {
		if !want[w] {
			t.Errorf("appliance log lacks %q", w)
		}
	}

	// The unknown VM is on the network (the site server leased it an
	// address) and asked for a boot; the appliance stayed silent.
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer lcancel()
	if _, err := l.WaitSiteLease(lctx, unknownMAC); err != nil {
		t.Fatalf("unknown VM got no site lease: %v", err)
	}
	if err := app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool {
		return e.Msg == "no proxy DHCP reply" && e.MAC == unknownMAC && e.Reason == "unknown-mac"
	}); err != nil {
		t.Fatalf("appliance never saw the unknown VM's request: %v", err)
	}
	for _, e := range app.Entries() {
		if e.MAC == unknownMAC && (e.Msg == "proxy DHCP reply" || e.Msg == "http request" && e.Status == 200) {
			t.Fatalf("appliance answered the unknown MAC: %+v", e)
		}
	}
	if strings.Contains(vms["unknown"].Console(), marker) {
		t.Fatal("the unknown VM booted the profile")
	}

	// The metrics agree with what happened.
	metrics, err := curl(ctx, l, "http://"+lab.ApplianceAddr+":8080/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, m := range []struct {
		series string
		min    float64
	}{
		{`moobi_dhcp_replies_total{firmware="efi-x64",port="67"}`, 1},
		{`moobi_dhcp_replies_total{firmware="ipxe",port="67"}`, 2},
		{`moobi_dhcp_ignored_total{reason="unknown-mac"}`, 1},
		{`moobi_tftp_transfers_total{result="ok"}`, 1},
		{`moobi_http_requests_total{code="200",route="GET /boot/{script}"}`, 2},
		{`moobi_http_requests_total{code="200",route="GET /profiles/{profile}/kernel"}`, 2},
	} {
		if v := metricValue(metrics, m.series); v < m.min {
			t.Errorf("%s = %v, want at least %v", m.series, v, m.min)
		}
	}
}

// TestReloadKeepsServing edits hosts.yaml under a running appliance: a
// broken edit is refused and the old inventory keeps answering; a good edit
// takes effect at once.
func TestReloadKeepsServing(t *testing.T) {
	lab.RequireRoot(t, "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := moobiBinary(t)
	l := lab.NewForTest(t, ctx)
	kernel := filepath.Join(l.Dir(), "vmlinuz")
	writeFile(t, kernel, "kernel")
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	good := fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %s/data
  ipxe_dir: /usr/lib/ipxe
profiles:
  p:
    kernel: %s
hosts:
  node01:
    mac: 52:54:00:aa:00:01
    profile: p
`, l.Dir(), kernel)
	writeFile(t, cfg, good)
	app := startAppliance(t, ctx, l, bin, cfg)
	script := "http://" + lab.ApplianceAddr + ":8080/boot/52:54:00:aa:00:01.ipxe"
	if out, err := curl(ctx, l, script); err != nil || !strings.HasPrefix(out, "#!ipxe") {
		t.Fatalf("script before the edit: %q, %v", out, err)
	}

	writeFile(t, cfg, good+"  node02:\n    mac: 52:54:00:aa:00:01\n    profile: nosuch\n")
	if err := app.WaitLog(ctx, 30*time.Second, func(e lab.LogEntry) bool {
		return e.Msg == "inventory reload refused; the previous inventory keeps serving"
	}); err != nil {
		t.Fatalf("broken edit not refused: %v", err)
	}
	if !strings.Contains(app.Log(), `hosts.yaml:14: host node02: MAC 52:54:00:aa:00:01 is already used by host node01 (line 10)`) {
		t.Errorf("the refusal does not say what is wrong and where:\n%s", lab.Tail(app.Log(), 5))
	}
	if out, err := curl(ctx, l, script); err != nil || !strings.HasPrefix(out, "#!ipxe") {
		t.Fatalf("script after a broken edit: %q, %v", out, err)
	}

	writeFile(t, cfg, strings.Replace(good, "52:54:00:aa:00:01", "52:54:00:aa:00:02", 1))
	if err := app.WaitLog(ctx, 30*time.Second, func(e lab.LogEntry) bool { return e.Msg == "inventory reloaded" }); err != nil {
		t.Fatalf("good edit not loaded: %v", err)
	}
	out, err := l.Command(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", script).Output()
	if err != nil || string(out) != "404" {
		t.Fatalf("script of a removed MAC: %q, %v; want 404", out, err)
	}
	if out, err := curl(ctx, l, strings.Replace(script, "aa:00:01", "aa:00:02", 1)); err != nil || !strings.HasPrefix(out, "#!ipxe") {
		t.Fatalf("script of the new MAC: %q, %v", out, err)
	}
}

func metricValue(text, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
