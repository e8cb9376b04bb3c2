package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func randomMarker() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "MOOBI-LAB-MARKER-" + hex.EncodeToString(b)
}

func TestDirectBoot(t *testing.T) {
	RequireRoot(t, "qemu-system-x86_64", "apt-get", "dpkg", "depmod")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	kernel, err := Kernel(ctx, TestCacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	ver, err := KernelVersion(TestCacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s (%s) in %v", kernel, ver, time.Since(start).Round(time.Millisecond))

	marker := randomMarker()
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	if err := BuildInitramfs(initrd, MarkerInit(marker), nil); err != nil {
		t.Fatal(err)
	}
	l := NewForTest(t, ctx)
	start = time.Now()
	vm, err := l.StartVM(ctx, VMOptions{
		Name: "direct", Firmware: Direct,
		Kernel: kernel, Initrd: initrd, Append: "console=ttyS0 panic=-1 moobi.test=direct",
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	if err := vm.WaitConsole(wctx, marker); err != nil {
		t.Fatal(err)
	}
	t.Logf("marker after %v", time.Since(start).Round(time.Millisecond))
	if err := vm.WaitConsole(wctx, "moobi.test=direct"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.Done():
	case <-wctx.Done():
		t.Fatalf("VM did not power off; console tail:\n%s", Tail(vm.Console(), 20))
	}
	if err := vm.Wait(); err != nil {
		t.Errorf("qemu exit: %v\n%s", err, vm.QemuLog())
	}
	t.Logf("VM powered off after %v", time.Since(start).Round(time.Millisecond))
}

func TestLabNetwork(t *testing.T) {
	RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := NewForTest(t, ctx)

	if !strings.Contains(l.SiteDHCPLog(), "started, version") {
		t.Errorf("dnsmasq log lacks start line:\n%s", l.SiteDHCPLog())
	}
	for _, addr := range []string{SiteAddr, SiteAddr6} {
		out, err := l.Command(ctx, BusyboxPath, "ping", "-c", "1", "-W", "5", addr).CombinedOutput()
		if err != nil {
			t.Errorf("ping %s from appliance namespace: %v\n%s", addr, err, out)
		}
	}

	// A bare client on the LAN gets an address from the site server.
	ns, err := l.AddHost(ctx, "cli")
	if err != nil {
		t.Fatal(err)
	}
	out, err := NetnsCommand(ctx, ns, BusyboxPath, "udhcpc", "-i", "eth0",
		"-f", "-q", "-n", "-t", "10", "-T", "1", "-s", "/bin/true").CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	t.Logf("udhcpc: %s", strings.TrimSpace(string(out)))
	if !strings.Contains(string(out), "lease of 10.99.0.") {
		t.Errorf("udhcpc got no lease:\n%s", out)
	}
	if err := l.WaitSiteDHCP(ctx, "DHCPACK("+siteVeth+")"); err != nil {
		t.Error(err)
	}

	// A process left running in the namespace must not keep Close from
	// tearing everything down.
	sleeper := l.Command(ctx, BusyboxPath, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Wait()

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := ListNetns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(n, l.ID()) {
			t.Errorf("namespace %s still exists after Close", n)
		}
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBIOSNetBootGetsSiteLease(t *testing.T) {
	RequireRoot(t, "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := NewForTest(t, ctx)
	start := time.Now()
	const mac = "52:54:00:99:b1:05"
	vm, err := l.StartVM(ctx, VMOptions{Name: "bios", MAC: mac, Firmware: BIOS})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 120*time.Second)
	defer wcancel()
	ip, err := l.WaitSiteLease(wctx, mac)
	if err != nil {
		t.Fatalf("%v\nconsole tail:\n%s", err, Tail(vm.Console(), 20))
	}
	t.Logf("BIOS VM leased %s after %v", ip, time.Since(start).Round(time.Millisecond))
	t.Logf("firmware log:\n%s", Tail(vm.FirmwareLog(), 15))
	if err := vm.Stop(); err != nil {
		t.Error(err)
	}
}

func TestUEFINetBootAsksSiteDHCP(t *testing.T) {
	RequireRoot(t, "qemu-system-x86_64", OVMFCode, OVMFVars)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := NewForTest(t, ctx)
	start := time.Now()
	const mac = "52:54:00:99:e1:05"
	vm, err := l.StartVM(ctx, VMOptions{Name: "uefi", MAC: mac, Firmware: UEFI})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 150*time.Second)
	defer wcancel()
	if err := l.WaitSiteDHCP(wctx, "DHCPDISCOVER("+siteVeth+") "+mac); err != nil {
		t.Fatalf("%v\nconsole tail:\n%s", err, Tail(vm.Console(), 20))
	}
	t.Logf("UEFI VM sent DHCPDISCOVER after %v", time.Since(start).Round(time.Millisecond))
	t.Logf("console:\n%s", Tail(vm.Console(), 15))
}

func TestCleanupStale(t *testing.T) {
	RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	live := NewForTest(t, ctx)

	// A namespace left by a dead process (no pid can exceed 4194304), with
	// a process still inside it.
	stale := NSPrefix + "deadbe-4194305-app"
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	defer DeleteNetns(context.Background(), stale)
	sleeper := NetnsCommand(ctx, stale, BusyboxPath, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()

	removed, err := CleanupStale(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesContains(removed, stale) {
		t.Errorf("CleanupStale removed %v, want %s among them", removed, stale)
	}
	for _, ns := range removed {
		if strings.Contains(ns, live.ID()) {
			t.Errorf("CleanupStale removed live lab namespace %s", ns)
		}
	}
	select {
	case <-exited:
	case <-ctx.Done():
		t.Fatal("process in stale namespace not killed")
	}
	names, err := ListNetns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slicesContains(names, stale) || !slicesContains(names, live.ApplianceNS()) || !slicesContains(names, live.SiteNS()) {
		t.Errorf("namespaces after CleanupStale: %v", names)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestBuildInitramfs(t *testing.T) {
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skip("needs busybox-static")
	}
	dir := t.TempDir()
	extra := filepath.Join(dir, "extra.txt")
	if err := os.WriteFile(extra, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a.gz"), filepath.Join(dir, "b.gz")
	files := map[string]string{"/etc/deep/extra.txt": extra}
	for _, p := range []string{a, b} {
		if err := BuildInitramfs(p, MarkerInit("it's a marker"), files); err != nil {
			t.Fatal(err)
		}
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) == 0 || string(ab) != string(bb) {
		t.Fatalf("initramfs not deterministic (%d vs %d bytes)", len(ab), len(bb))
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed; content not checked")
	}
	out, err := exec.Command("sh", "-c", "gzip -dc "+ShellQuote(a)+" | cpio -itv --quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	list := string(out)
	for _, want := range []string{
		"-rwxr-xr-x   1 root     root", " init\n", " bin/busybox\n", " bin/sh -> /bin/busybox\n",
		" sbin/poweroff -> /bin/busybox\n", "crw-------   1 root     root       5,   1", " dev/console\n",
		" etc/deep\n", "-rw-------   1 root     root            6", " etc/deep/extra.txt\n",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, Tail(list, 30))
		}
	}
	script, err := exec.Command("sh", "-c", "gzip -dc "+ShellQuote(a)+" | cpio -i --quiet --to-stdout init").Output()
	if err != nil || string(script) != MarkerInit("it's a marker") {
		t.Errorf("init script round trip: %v\n%s", err, script)
	}
}
