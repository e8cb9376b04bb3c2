package e2e

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"moobi/inventory"
	"moobi/lab"
)

// lockdownDenial is how the kernel reports something lockdown refused
// ("Lockdown: init: /dev/mem,kmem,port is restricted; see man
// kernel_lockdown.7"): the process and what.
var lockdownDenial = regexp.MustCompile(`Lockdown: (\S+): (.*) is restricted`)

// secureBootLines are the kernel's lines about Secure Boot and lockdown.
var secureBootLines = regexp.MustCompile(`(?im)^.*(secure ?boot|lockdown|locked down).*$`)

// TestSecureBoot: two VMs whose firmware enforces Secure Boot (OVMF with
// Microsoft's keys enrolled) share one lab. The secure_boot host boots an
// image through the signed chain — shim, Debian's grub, the image's signed
// kernel, with the node initramfs and modules archive — to running; its
// kernel says Secure Boot is on and the kernel locked down, and nothing
// the node does is refused by lockdown. The other host is offered
// Debian's unsigned iPXE, which the firmware refuses to run: the proof
// that the firmware enforces signatures.
func TestSecureBoot(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", lab.OVMFSecureCode, lab.OVMFSecureVars,
		inventory.DefaultShim, inventory.DefaultGrub)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	signed := rackNode{"sb-signed", "52:54:00:5b:00:01", lab.UEFISecureBoot}
	unsigned := rackNode{"sb-ipxe", "52:54:00:5b:00:02", lab.UEFISecureBoot}
	r := newVMRack(t, ctx, vmRackOptions{
		hosts:       []rackNode{signed, unsigned},
		imageMiB:    8,
		hostProfile: map[string]string{signed.name: "secure_boot: true"},
		// Debian's grub asks the TFTP server the site DHCP server names:
		// the operator points it at the appliance.
		siteNextServer: lab.ApplianceAddr,
	})
	start := time.Now()
	var g errgroup.Group
	vms := map[string]*lab.VM{}
	for _, n := range []rackNode{signed, unsigned} {
		vm, err := r.l.StartVM(ctx, lab.VMOptions{Name: n.name, MAC: n.mac, Firmware: n.fw, MemoryMB: 768})
		if err != nil {
			t.Fatal(err)
		}
		vms[n.name] = vm
	}

	// The signed chain boots the image.
	g.Go(func() error {
		vm := vms[signed.name]
		wctx, wcancel := context.WithTimeout(ctx, 9*time.Minute)
		defer wcancel()
		if err := vm.WaitConsole(wctx, lab.ImageMarker+signed.name); err != nil {
			return fmt.Errorf("%s: %w\n%s", signed.name, err, lab.Tail(vm.Console(), 60))
		}
		t.Logf("%s runs its image through the signed chain, %.1fs after power-on", signed.name, time.Since(start).Seconds())
		return nil
	})
	// Unsigned iPXE is refused.
	g.Go(func() error {
		vm := vms[unsigned.name]
		wctx, wcancel := context.WithTimeout(ctx, 6*time.Minute)
		defer wcancel()
		if err := vm.WaitConsole(wctx, "Access Denied"); err != nil {
			return fmt.Errorf("%s: the firmware did not refuse unsigned iPXE: %w\n%s",
				unsigned.name, err, lab.Tail(vm.Console(), 40))
		}
		t.Logf("%s refused unsigned iPXE, %.1fs after power-on: %s", unsigned.name, time.Since(start).Seconds(),
			strings.Join(consoleLines(vm.Console(), "Access Denied"), " | "))
		return nil
	})
	if err := g.Wait(); err != nil {
		t.Logf("appliance log:\n%s", lab.Tail(r.app.Log(), 80))
		t.Fatal(err)
	}
	waitNodeState(t, ctx, r, signed.mac, "running", time.Minute)
	var phases []string
	for _, p := range getNodes(t, ctx, r)[signed.mac].Phases {
		phases = append(phases, p.State)
	}
	t.Logf("%s: phases %v", signed.name, phases)
	if !slices.Contains(phases, "firmware") || !slices.Contains(phases, "kernel") {
		t.Errorf("%s: phases %v, want firmware (shim, grub) and kernel (grub's kernel and initrds over TFTP)", signed.name, phases)
	}

	console := vms[signed.name].Console()
	t.Logf("%s: the kernel on Secure Boot and lockdown:\n%s", signed.name, strings.Join(secureBootLines.FindAllString(console, -1), "\n"))
	for _, want := range []string{"secureboot: Secure boot enabled", "Kernel is locked down from EFI Secure Boot"} {
		if !strings.Contains(console, want) {
			t.Errorf("%s: the kernel did not say %q", signed.name, want)
		}
	}
	// The kernel itself (swapper/0) is refused hibernation while it boots
	// locked down. Anything refused to another process is the node (or
	// the image) needing what lockdown forbids.
	for _, m := range lockdownDenial.FindAllStringSubmatch(console, -1) {
		if m[1] != "swapper/0" {
			t.Errorf("%s: lockdown refused %s: %s", signed.name, m[1], m[0])
		}
	}

	// What each host asked the appliance for: the signed chain over TFTP,
	// grub's configuration over HTTP, and for the other host iPXE, which
	// never ran (it would have asked for its script).
	fetched := map[string][]string{}
	ips := map[string]string{}
	for _, n := range []rackNode{signed, unsigned} {
		ip, err := r.l.WaitSiteLease(ctx, n.mac)
		if err != nil {
			t.Fatal(err)
		}
		ips[ip] = n.name
	}
	for _, e := range r.app.Entries() {
		host, _, _ := strings.Cut(e.Client, ":")
		switch {
		case strings.HasPrefix(e.Msg, "TFTP transfer done"):
			fetched[ips[host]] = append(fetched[ips[host]], "tftp:"+strings.TrimPrefix(e.File, "/"))
		case e.Msg == "http request" && strings.HasPrefix(e.URI, "/boot/"):
			fetched[ips[host]] = append(fetched[ips[host]], fmt.Sprintf("http:%s %d", e.URI, e.Status))
		}
	}
	t.Logf("fetched: %q", fetched)
	has := func(host, what string) bool {
		for _, f := range fetched[host] {
			if f == what {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"tftp:shimx64.efi", "tftp:grubx64.efi", "tftp:grub/grub.cfg", "tftp:boot/" + signed.mac + ".grub", "tftp:images/web/" + r.version + "/kernel"} {
		if !has(signed.name, want) {
			t.Errorf("%s did not fetch %s", signed.name, want)
		}
	}
	if !has(unsigned.name, "tftp:ipxe.efi") {
		t.Errorf("%s was not served ipxe.efi: the firmware refused nothing", unsigned.name)
	}
	for _, f := range fetched[unsigned.name] {
		if strings.HasPrefix(f, "http:") {
			t.Errorf("%s asked for %s: iPXE ran", unsigned.name, f)
		}
	}
	if c := vms[unsigned.name].Console(); strings.Contains(c, "iPXE") {
		t.Errorf("%s: iPXE ran under Secure Boot:\n%s", unsigned.name, lab.Tail(c, 20))
	}
	t.Logf("secure boot test done in %.1fs after power-on", time.Since(start).Seconds())
}
