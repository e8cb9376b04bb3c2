package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"moobi/lab"
)

// httpBootArgs make OVMF skip its PXE boot options (fw_cfg knobs of
// OVMF's network stack), so that its boot manager tries UEFI HTTP boot
// on the NIC: DHCP with vendor class HTTPClient, then the boot file URL.
var httpBootArgs = []string{
	"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no",
	"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no",
}

// fullDHCPInline is fullDHCPConfig on one line, for vmRackOptions.appliance.
const fullDHCPInline = "dhcp: {mode: full, subnet: 10.99.0.0/24, range: 10.99.0.20-10.99.0.250, router: 10.99.0.1, dns: [10.99.0.1], lease_time: 1h}"

type bootVM struct {
	rackNode
	args []string
}

// bootAll powers on the VMs and waits until each runs its image.
func bootAll(t *testing.T, ctx context.Context, r *vmRack, vms []bootVM) map[string]*lab.VM {
	t.Helper()
	start := time.Now()
	var g errgroup.Group
	out := map[string]*lab.VM{}
	for _, n := range vms {
		vm, err := r.l.StartVM(ctx, lab.VMOptions{Name: n.name, MAC: n.mac, Firmware: n.fw, MemoryMB: 768, ExtraArgs: n.args})
		if err != nil {
			t.Fatal(err)
		}
		out[n.name] = vm
		g.Go(func() error {
			wctx, wcancel := context.WithTimeout(ctx, 8*time.Minute)
			defer wcancel()
			if err := vm.WaitConsole(wctx, lab.ImageMarker+n.name); err != nil {
				return fmt.Errorf("%s (%s %v): %w\n%s", n.name, n.fw, n.args, err, lab.Tail(vm.Console(), 40))
			}
			t.Logf("%s (%s) is running its image, %.1fs after power-on", n.name, n.fw, time.Since(start).Seconds())
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dhcpReplies are the appliance's DHCP replies to mac (both modes).
func dhcpReplies(app *lab.Appliance, mac string) []lab.LogEntry {
	var out []lab.LogEntry
	for _, e := range app.Entries() {
		if (e.Msg == "DHCP reply" || e.Msg == "proxy DHCP reply") && e.MAC == mac {
			out = append(out, e)
		}
	}
	return out
}

// checkHTTPBoot asserts that mac's firmware booted over UEFI HTTP: it was
// handed the iPXE binary's URL and fetched it over HTTP.
func checkHTTPBoot(t *testing.T, app *lab.Appliance, mac string) {
	t.Helper()
	want := "http://" + lab.ApplianceAddr + ":8080/ipxe/ipxe.efi"
	handed := false
	for _, e := range dhcpReplies(app, mac) {
		if e.Firmware == "efi-x64-http" && e.BootFile == want {
			handed = true
		}
	}
	fetched := false
	for _, e := range app.Entries() {
		if e.URI == "/ipxe/ipxe.efi" && e.Status == 200 {
			fetched = true
		}
	}
	if !handed || !fetched {
		t.Errorf("%s: UEFI HTTP boot not seen (handed %s: %v, fetched over HTTP: %v)", mac, want, handed, fetched)
	}
}

// TestFullDHCPBootsVMs: on a bare VLAN (no site DHCP server), the
// appliance in full DHCP mode boots a SeaBIOS VM and an OVMF (PXE) VM at
// the static addresses hosts.yaml gives them, and an OVMF VM over UEFI
// HTTP boot at a pool address, each to its image. After a restart of
// the appliance the lease file still holds the pool host's lease, and a
// DHCP client asking with its MAC gets the same address back.
func TestFullDHCPBootsVMs(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", "dhclient", lab.OVMFCode)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	bios := bootVM{rackNode: rackNode{"full-bios", "52:54:00:fd:01:01", lab.BIOS}}
	uefi := bootVM{rackNode: rackNode{"full-uefi", "52:54:00:fd:01:02", lab.UEFI}}
	httpb := bootVM{rackNode: rackNode{"full-http", "52:54:00:fd:01:03", lab.UEFI}, args: httpBootArgs}
	r := newVMRack(t, ctx, vmRackOptions{
		hosts:     []rackNode{bios.rackNode, uefi.rackNode, httpb.rackNode},
		imageMiB:  16,
		appliance: fullDHCPInline,
		bareVLAN:  true,
		hostLines: map[string]string{bios.name: "ip: 10.99.0.11", uefi.name: "ip: 10.99.0.12"},
	})
	vms := bootAll(t, ctx, r, []bootVM{bios, uefi, httpb})
	nodes := getNodes(t, ctx, r)
	for mac, want := range map[string]string{bios.mac: "10.99.0.11", uefi.mac: "10.99.0.12"} {
		if got := nodes[mac].Address; got != want {
			t.Errorf("%s: address %q, want its static %s", mac, got, want)
		}
	}
	pool := nodes[httpb.mac].Address
	if !inLabPool(pool) {
		t.Errorf("%s: address %q, want one from the pool", httpb.mac, pool)
	}
	for _, n := range []bootVM{bios, uefi, httpb} {
		if s := nodes[n.mac].State; s != "running" {
			t.Errorf("%s: state %q, want running", n.name, s)
		}
	}
	checkHTTPBoot(t, r.app, httpb.mac)
	t.Logf("three VMs booted in full DHCP mode in %.1fs (pool host at %s)", time.Since(start).Seconds(), pool)

	// Restart: the pool host's lease survives, and a client asking with
	// its MAC (the VM powered off) gets the same address.
	vms[httpb.name].Stop()
	if err := r.app.Stop(); err != nil {
		t.Fatal(err)
	}
	leases, err := os.ReadFile(filepath.Join(r.l.Dir(), "data", "state", "dhcp-leases.json"))
	if err != nil || !strings.Contains(string(leases), httpb.mac) {
		t.Fatalf("lease file after a stop: %v\n%s", err, leases)
	}
	r.app = startAppliance(t, ctx, r.l, r.bin, r.cfg)
	ns, err := r.l.AddHost(ctx, "again")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "link", "set", "eth0", "address", httpb.mac)
	if got := dhclientLease(t, ctx, r.l, ns); got != pool {
		t.Errorf("after a restart %s got %s, had %s", httpb.mac, got, pool)
	}
	t.Logf("TestFullDHCPBootsVMs took %.1fs", time.Since(start).Seconds())
}

// TestHTTPBootProxy: beside the site DHCP server, an OVMF VM whose PXE is
// off boots over UEFI HTTP: the proxy hands it the iPXE binary's URL
// (option 60 HTTPClient), iPXE chains the host's script, the image runs.
func TestHTTPBootProxy(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", lab.OVMFCode)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	start := time.Now()
	httpb := bootVM{rackNode: rackNode{"proxy-http", "52:54:00:fd:02:01", lab.UEFI}, args: httpBootArgs}
	r := newVMRack(t, ctx, vmRackOptions{hosts: []rackNode{httpb.rackNode}, imageMiB: 16})
	bootAll(t, ctx, r, []bootVM{httpb})
	checkHTTPBoot(t, r.app, httpb.mac)
	if _, err := r.l.WaitSiteLease(ctx, httpb.mac); err != nil {
		t.Errorf("the site DHCP server leased no address to %s: %v", httpb.mac, err)
	}
	t.Logf("TestHTTPBootProxy took %.1fs", time.Since(start).Seconds())
}
