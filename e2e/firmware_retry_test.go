package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/lab"
)

// retryLine is what the boot script (bootserver/httpd/script.go) has iPXE
// print when a download fails, before it waits and starts over.
const retryLine = "Moobi: boot failed, retrying in 5 seconds"

// TestFirmwareRetriesWhileApplianceDown: a BIOS VM (SeaBIOS, iPXE ROM)
// boots an image profile through a slow link; once the appliance sees it
// fetch its kernel, the appliance is SIGKILLed mid-download. iPXE's boot
// script says on the console that the boot failed and keeps retrying while
// the appliance is down. Meanwhile a new version of the image is published
// with --keep 1, which deletes the version the node was loading. The
// appliance restarts on the same config and data_dir (link no longer
// slow), the next retry fetches a fresh boot script, which names the new
// version, and the node verifies that version and runs it, without a
// reboot.
func TestFirmwareRetriesWhileApplianceDown(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", "tc")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	node := rackNode{"retry-node", "52:54:00:f1:00:01", lab.BIOS}
	r := newVMRack(t, ctx, vmRackOptions{hosts: []rackNode{node}, imageMiB: 8})
	l := r.l

	// The appliance's side of the bridge at 4 Mbit/s: the 14 MB kernel
	// takes about half a minute and the 7 MB node initramfs about 15 s, so
	// the appliance dies mid-download.
	shape(t, ctx, l.ApplianceNS(), lab.BridgeName, "4mbit")
	// With no graphics, SeaBIOS copies iPXE's screen output to the serial
	// console.
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: node.name, MAC: node.mac, Firmware: node.fw, MemoryMB: 768,
		ExtraArgs: []string{"-machine", "graphics=off"}})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	start := time.Now()
	waitNodeState(t, ctx, r, node.mac, "kernel", 5*time.Minute)
	r.app.Kill()
	downAt := time.Now()
	t.Logf("%s requested its kernel %.1fs after power-on; appliance killed", node.name, downAt.Sub(start).Seconds())

	// The firmware keeps retrying while the appliance is down: twice shows
	// the loop, not a single failure.
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer wcancel()
	if err := waitConsoleCount(wctx, vm, retryLine, 2); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, lab.Tail(vm.Console(), 30))
	}
	for _, line := range consoleLines(vm.Console(), "Moobi:", "http://") {
		t.Logf("console: %s", line)
	}
	t.Logf("iPXE retried %d times in the %.1fs the appliance was down", strings.Count(vm.Console(), retryLine), time.Since(downAt).Seconds())

	// A new version, keeping only it: the URLs of the version the node
	// was loading are gone.
	image2 := filepath.Join(l.Dir(), "image2.squashfs")
	if err := lab.BuildBootImage(image2, 8); err != nil {
		t.Fatal(err)
	}
	v2 := r.publish(t, ctx, image2, "--keep", "1")
	t.Logf("published %s with --keep 1 while the appliance was down (the node was loading %s)", v2, r.version)

	// Back, on the same config and data_dir, on a fast link.
	run(t, ctx, "tc", "-n", l.ApplianceNS(), "qdisc", "del", "dev", lab.BridgeName, "root")
	restartedAt := time.Now()
	r.app = startAppliance(t, ctx, l, r.bin, r.cfg)
	if err := r.app.WaitLog(ctx, 3*time.Minute, func(e lab.LogEntry) bool {
		return e.Msg == "http request" && e.Status == 200 && strings.HasSuffix(e.URI, "/kernel") && e.Time.After(restartedAt)
	}); err != nil {
		t.Fatalf("iPXE did not fetch the kernel again after the restart: %v\nconsole:\n%s", err, lab.Tail(vm.Console(), 30))
	}
	bctx, bcancel := context.WithTimeout(ctx, 6*time.Minute)
	defer bcancel()
	if err := vm.WaitConsole(bctx, lab.ImageMarker+node.name); err != nil {
		t.Fatalf("%v\n%s", err, lab.Tail(vm.Console(), 40))
	}
	t.Logf("%s is running its image %.1fs after the restart", node.name, time.Since(restartedAt).Seconds())

	// The timeline ends running, after the node verified its image.
	var n struct {
		State   string      `json:"state"`
		Version string      `json:"version"`
		Phases  []phaseView `json:"phases"`
	}
	waitNodeState(t, ctx, r, node.mac, "running", 2*time.Minute)
	out, err := curl(ctx, l, r.url("/v1/nodes/"+node.mac))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		t.Fatalf("/v1/nodes/%s: %v\n%s", node.mac, err, out)
	}
	var phases []string
	for _, p := range n.Phases {
		phases = append(phases, fmt.Sprintf("%s %.1fs", p.State, p.Seconds))
	}
	t.Logf("%s timeline: %s", node.name, strings.Join(phases, " → "))
	if k := len(n.Phases); n.State != "running" || k < 2 || n.Phases[k-1].State != "running" || n.Phases[k-2].State != "verified" {
		t.Fatalf("%s is %q, timeline %v; want running after verified", node.name, n.State, phases)
	}
	if n.Version != v2 {
		t.Errorf("%s runs version %q, want %s, the only one kept", node.name, n.Version, v2)
	}
	if err := r.app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool {
		return e.Msg == "node event" && e.MAC == node.mac && e.State == "verified" && e.Time.After(restartedAt)
	}); err != nil {
		t.Fatalf("no verified event from %s after the restart: %v", node.name, err)
	}
	if c := vm.Console(); strings.Count(c, "iPXE initialising devices") != 1 {
		t.Errorf("the firmware started %d times, want once (the script's retry, not a reboot)", strings.Count(c, "iPXE initialising devices"))
	}
}

// waitConsoleCount polls vm's console until s appears at least n times.
func waitConsoleCount(ctx context.Context, vm *lab.VM, s string, n int) error {
	for {
		c := vm.Console()
		if strings.Count(c, s) >= n {
			return nil
		}
		select {
		case <-vm.Done():
			return fmt.Errorf("VM %s exited with %q seen %d times, want %d", vm.Name, s, strings.Count(c, s), n)
		case <-ctx.Done():
			return fmt.Errorf("VM %s: %q seen %d times, want %d: %w", vm.Name, s, strings.Count(c, s), n, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// consoleLines returns the console's lines holding any of substrs, with
// terminal control sequences and carriage returns left out.
func consoleLines(console string, substrs ...string) []string {
	var out []string
	for _, line := range strings.Split(console, "\n") {
		line = strings.TrimSpace(strings.Map(func(r rune) rune {
			if r < ' ' {
				return -1
			}
			return r
		}, line))
		for _, s := range substrs {
			if strings.Contains(line, s) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}
