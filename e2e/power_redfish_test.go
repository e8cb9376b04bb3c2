package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/lab"
	"moobi/power/redfish/redfishtest"
)

// TestPowerRedfish drives a Redfish service over TLS through `moobi
// power`: the service is DMTF's published mockup public-rackmount1 (DMTF's
// data: its service root, systems collection and ComputerSystem) served by
// redfishtest (ours: it keeps PowerState and the boot override and applies
// ComputerSystem.Reset and Boot PATCHes) to a real qemu VM, which it
// starts and kills. pxe sets the one-time Pxe override and the VM netboots
// from the appliance into its image; a plain on boots nothing from the
// network; with TLS verification on (the default) the test certificate is
// refused with a clear error, while the host with insecure_tls succeeds in
// the same command.
func TestPowerRedfish(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	node := rackNode{"rf-node01", "52:54:00:b2:00:01", lab.BIOS}
	strict := rackNode{"rf-strict", "52:54:00:b2:00:02", lab.BIOS}
	hosts := []rackNode{node, strict}
	r := &powerRack{newVMRack(t, ctx, vmRackOptions{hosts: hosts, imageMiB: 2})}
	l := r.l
	vm, err := l.NewPoweredVM(ctx, lab.VMOptions{Name: node.name, MAC: node.mac, MemoryMB: 512})
	if err != nil {
		t.Fatal(err)
	}
	const user, password = "operator", "redfish-s3cret"
	svc := redfishtest.New(user, password, vm)
	ln, err := l.Listen(lab.ApplianceAddr + ":0")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(svc.Handler())
	ts.Listener.Close()
	ts.Listener = ln
	ts.Config.ErrorLog = nil
	ts.StartTLS()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Redfish requests: %q, starts %v\nVM console:\n%s\nqemu:\n%s\nfirmware:\n%s", svc.Requests(), vm.Starts(), lab.Tail(vm.VM.Console(), 30), lab.Tail(vm.VM.QemuLog(), 20), lab.Tail(vm.VM.FirmwareLog(), 20))
		}
		ts.Close()
	})
	if err := os.WriteFile(filepath.Join(l.Dir(), "redfish.pw"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bmc := fmt.Sprintf("type: redfish\nuser: %s\npassword_file: redfish.pw\naddress: %s", user, ts.URL)
	r.addBMCs(t, ctx, hosts, map[string]string{
		node.name:   bmc + "\ninsecure_tls: true", // the test certificate is self-made
		strict.name: bmc,
	})
	status := func(want string) {
		t.Helper()
		out, code, _ := r.power(ctx, "status", node.name)
		if code != 0 || !regexp.MustCompile(`(?m)^`+node.name+`\s+`+want+`\s.*\sok$`).MatchString(out) {
			t.Fatalf("moobi power status (exit %d), want %s:\n%s", code, want, out)
		}
		if vm.Running() != (want == "on") {
			t.Fatalf("moobi power status says %s, the VM running = %v", want, vm.Running())
		}
	}
	status("off")

	// The default verifies the BMC's certificate: the strict host fails,
	// and says how to opt out; the other host in the command succeeds.
	out, code, took := r.power(ctx, "status", "rf-*")
	t.Logf("moobi power status rf-* (%.1fs):\n%s", took.Seconds(), out)
	if code != 1 || !regexp.MustCompile(strict.name+`\s+unknown\s.*\sFAILED \(failed\): .*TLS certificate does not verify \(set bmc.insecure_tls: true`).MatchString(powerLine(out, strict.name)) ||
		!regexp.MustCompile(node.name+`\s+off\s.*\sok$`).MatchString(powerLine(out, node.name)) {
		t.Errorf("exit %d; want 1, %s refused for its certificate and %s ok", code, strict.name, node.name)
	}

	if out, code, _ := r.power(ctx, "on", node.name); code != 0 {
		t.Fatalf("moobi power on: exit %d\n%s", code, out)
	}
	status("on")

	start := time.Now()
	if out, code, _ := r.power(ctx, "pxe", node.name); code != 0 {
		t.Fatalf("moobi power pxe: exit %d\n%s", code, out)
	}
	eventually(t, ctx, 4*time.Minute, 500*time.Millisecond, func() (bool, string) {
		c := vm.VM.Console()
		return strings.Contains(c, lab.ImageMarker+node.name), "VM console:\n" + lab.Tail(c, 10)
	})
	t.Logf("power pxe to the image running: %.1fs", time.Since(start).Seconds())
	waitNodeState(t, ctx, r.vmRack, node.mac, "running", 30*time.Second)
	if diff := cmp.Diff([]bool{false, true}, vm.Starts()); diff != "" {
		t.Errorf("VM starts (true: from the network) -want +got:\n%s", diff)
	}
	if tg, en := svc.Override(); tg != "None" || en != "Disabled" {
		t.Errorf("boot override after the PXE boot: %s %s, want None Disabled", tg, en)
	}
	status("on")

	if out, code, _ := r.power(ctx, "off", node.name); code != 0 {
		t.Fatalf("moobi power off: exit %d\n%s", code, out)
	}
	status("off")
	want := []string{"Reset On", "PATCH Boot Pxe Once", "Reset ForceRestart", "Reset ForceOff"}
	if diff := cmp.Diff(want, svc.Requests()); diff != "" {
		t.Errorf("what the appliance asked of the BMC -want +got:\n%s", diff)
	}
}
