package e2e

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"moobi/lab"
)

// TestBootModulesWithoutDep: the image is published with the kernel's
// module tree as dpkg -x leaves it (no modules.dep, no modules.alias); the
// modules archive then carries a generated modules.dep, and a BIOS VM loads
// its NIC, squashfs and overlay modules from it and runs the image.
func TestBootModulesWithoutDep(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	_, tree := lab.UndepmoddedModules(t, ctx)
	node := rackNode{"nodep-node", "52:54:00:de:90:01", lab.BIOS}
	r := newVMRack(t, ctx, vmRackOptions{hosts: []rackNode{node}, imageMiB: 1, modules: tree})
	vm, err := r.l.StartVM(ctx, lab.VMOptions{Name: node.name, MAC: node.mac, Firmware: node.fw, MemoryMB: 768})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	start := time.Now()
	waitNodeState(t, ctx, r, node.mac, "running", 9*time.Minute)
	m := regexp.MustCompile(`kernel modules loaded.*count=(\d+)`).FindStringSubmatch(vm.Console())
	if m == nil {
		t.Fatalf("the node did not say how many modules it loaded:\n%s", lab.Tail(vm.Console(), 30))
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Fatalf("the node loaded no module:\n%s", lab.Tail(vm.Console(), 30))
	}
	t.Logf("%s running %.1fs after power-on, %s modules loaded from a tree without modules.dep", node.name, time.Since(start).Seconds(), m[1])
}
