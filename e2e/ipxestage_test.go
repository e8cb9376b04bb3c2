package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/lab"
)

// TestModulesArchiveReplacesInit shows why whoever answers the iPXE stage
// owns the node: iPXE hands the kernel the node initramfs and then the
// image's modules archive, and the kernel unpacks both into one root
// filesystem, the later archive's files replacing the earlier's. A
// "modules archive" holding its own /init (here a busybox script) runs
// instead of the node client, which never starts and so never checks a
// signature. The VM boots the cloud kernel directly with the two archives
// concatenated, as iPXE places them in memory.
func TestModulesArchiveReplacesInit(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "cpio", "busybox")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := moobiBinary(t)
	initrd, _ := nodeInitrd(t, ctx, bin)
	kernel, err := lab.Kernel(ctx, lab.TestCacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}

	// The rogue archive: /init and a static busybox, nothing of lib/modules.
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	const marker = "ROGUE-MODULES-ARCHIVE-INIT"
	script := "#!/bin/busybox sh\n/bin/busybox echo " + marker + " > /dev/console\n/bin/busybox poweroff -f\n"
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, time.Minute)
	defer ccancel()
	cmd := exec.CommandContext(cctx, "cpio", "-o", "-H", "newc", "--quiet")
	cmd.Dir = root
	cmd.Stdin = strings.NewReader("init\nbin\nbin/busybox\n")
	rogue, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	node, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	// iPXE places each initrd at a 4-byte boundary (zeros between them,
	// which the kernel skips); the kernel reads an archive only from such
	// a boundary, so without the padding the rogue archive would be read
	// or skipped depending on the node initramfs's length.
	for len(node)%4 != 0 {
		node = append(node, 0)
	}
	both := filepath.Join(dir, "initrds")
	if err := os.WriteFile(both, append(node, rogue...), 0o644); err != nil {
		t.Fatal(err)
	}

	l := lab.NewForTest(t, ctx)
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: "rogue-modules", Firmware: lab.Direct, MemoryMB: 512, Kernel: kernel, Initrd: both,
		Append: "console=ttyS0 panic=-1 moobi.server=http://" + lab.ApplianceAddr + ":8080 moobi.mac=52:54:00:77:00:01"})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer wcancel()
	if err := vm.WaitConsole(wctx, marker); err != nil {
		t.Fatalf("the rogue archive's /init did not run: %v\n%s", err, lab.Tail(vm.Console(), 30))
	}
	if c := vm.Console(); strings.Contains(c, "MOOBI") {
		t.Errorf("the node client ran too:\n%s", lab.Tail(c, 30))
	}
}
