package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"moobi/lab"
)

var (
	initrdOnce sync.Once
	initrdPath string
	initrdErr  error
)

// nodeInitrd builds the node initramfs once per test process, or takes it
// from the cache when its sources have not changed.
func nodeInitrd(t *testing.T, ctx context.Context, bin string) string {
	t.Helper()
	initrdOnce.Do(func() {
		src, _ := filepath.Abs("..")
		start := time.Now()
		var built bool
		initrdPath, built, initrdErr = lab.NodeInitrd(ctx, lab.TestCacheDir(t), bin, src)
		if initrdErr == nil && built {
			st, _ := os.Stat(initrdPath)
			t.Logf("node initramfs: %d bytes gzip'd, built in %.0fs", st.Size(), time.Since(start).Seconds())
		}
	})
	if initrdErr != nil {
		t.Fatal(initrdErr)
	}
	return initrdPath
}

type rackNode struct {
	name, mac string
	fw        lab.Firmware
}

// TestRackBootsImage: VMs (BIOS and UEFI) PXE-boot an image profile: the
// node initramfs fetches a ≥64 MiB image over BitTorrent, verifies it,
// pivots into it, and the image's own init prints the node's hostname. The
// appliance uploads less than twice the image.
func TestRackBootsImage(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", lab.OVMFCode)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin := moobiBinary(t)
	cache := lab.TestCacheDir(t)
	kernel, err := lab.Kernel(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	modules, err := lab.KernelModulesDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	initrd := nodeInitrd(t, ctx, bin)
	l := lab.NewForTest(t, ctx)
	rack := []rackNode{
		{"rack1-node01", "52:54:00:b0:00:01", lab.BIOS},
		{"rack1-node02", "52:54:00:b0:00:02", lab.UEFI},
		{"rack1-node03", "52:54:00:b0:00:03", lab.BIOS},
		{"rack1-node04", "52:54:00:b0:00:04", lab.UEFI},
	}
	if n := os.Getenv("MOOBI_RACK_SIZE"); n != "" {
		var k int
		fmt.Sscan(n, &k)
		rack = rack[:k]
	}
	var hosts strings.Builder
	for _, n := range rack {
		fmt.Fprintf(&hosts, "  %s:\n    mac: %s\n    profile: web\n", n.name, n.mac)
	}
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	writeFile(t, cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %[1]s/data
  ipxe_dir: /usr/lib/ipxe
  node_initrd: %[2]s
  # Under TCG the VMs' CPUs make slow peers next to a native appliance:
  # cap the appliance's seeding as an operator would on a shared uplink.
  seed_upload_mbit: 8
profiles:
  web:
    image: web
    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on moobi.reboot_after=5m
hosts:
%[3]s`, l.Dir(), initrd, hosts.String()))
	image := filepath.Join(l.Dir(), "image.squashfs")
	if err := lab.BuildBootImage(image, 64); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(image)
	if out, err := exec.CommandContext(ctx, bin, "image", "add", "--config", cfg, "--name", "web", "--kernel", kernel, "--rootfs", image, "--modules", modules).CombinedOutput(); err != nil {
		t.Fatalf("image add: %v\n%s", err, out)
	}
	app := startAppliance(t, ctx, l, bin, cfg)
	if err := app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool { return e.Msg == "seeding" }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var g errgroup.Group
	for _, n := range rack {
		vm, err := l.StartVM(ctx, lab.VMOptions{Name: n.name, MAC: n.mac, Firmware: n.fw, MemoryMB: 768})
		if err != nil {
			t.Fatal(err)
		}
		g.Go(func() error {
			wctx, wcancel := context.WithTimeout(ctx, 12*time.Minute)
			defer wcancel()
			if err := vm.WaitConsole(wctx, lab.ImageMarker+n.name); err != nil {
				return fmt.Errorf("%s (%s): %w\n%s", n.name, n.fw, err, lab.Tail(vm.Console(), 40))
			}
			t.Logf("%s (%s) is running its image, %.1fs after power-on", n.name, n.fw, time.Since(start).Seconds())
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	metrics, err := curl(ctx, l, "http://"+lab.ApplianceAddr+":8080/metrics")
	if err != nil {
		t.Fatal(err)
	}
	bt := max(0, metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="bittorrent"}`))
	web := max(0, metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="http"}`))
	t.Logf("%d nodes booted a %d-byte image in %.1fs; the appliance uploaded %.0f bytes (%.2f× the image, %.0f over HTTP)",
		len(rack), st.Size(), time.Since(start).Seconds(), bt+web, (bt+web)/float64(st.Size()), web)
	if bt+web >= 2*float64(st.Size()) {
		t.Fatalf("the appliance uploaded %.0f bytes, twice the image or more", bt+web)
	}
	if running := metricValue(metrics, `moobi_nodes{state="running"}`); running != float64(len(rack)) {
		t.Errorf("moobi_nodes{state=\"running\"} = %v, want %d", running, len(rack))
	}

	// A node that comes later is served by the running nodes' seeders
	// (started before their pivot): it gets more over BitTorrent than the
	// appliance uploaded meanwhile.
	ns, err := l.AddHost(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "addr", "add", "10.99.0.50/24", "dev", "eth0")
	il := &imageLab{l: l, app: app, bin: bin, cfg: cfg, size: st.Size()}
	r := il.fetchAll(t, ctx, []string{ns}, []string{rack[0].mac}, "--webseed-after", "1h")[0]
	if r.err != nil {
		t.Fatal(r.err)
	}
	after, _ := curl(ctx, l, "http://"+lab.ApplianceAddr+":8080/metrics")
	delta := max(0, metricValue(after, `moobi_swarm_uploaded_bytes_total{image="web",protocol="bittorrent"}`)) - bt
	fromNodes := float64(r.fromPeers) - delta
	t.Logf("late node: %d bytes over BitTorrent, %.0f of them from the appliance, %.0f from running nodes", r.fromPeers, delta, fromNodes)
	if fromNodes <= 0 {
		t.Fatal("the running nodes served nothing: their seeders did not survive the pivot")
	}
}

// bootOnce powers on a VM and waits for its image's init; it returns the
// node's `verified` event (its download figures) and stops the VM.
func bootOnce(t *testing.T, ctx context.Context, l *lab.Lab, app *lab.Appliance, n rackNode, disk string) lab.LogEntry {
	t.Helper()
	since := time.Now()
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: n.name, MAC: n.mac, Firmware: n.fw, MemoryMB: 768, DiskPath: disk})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	wctx, wcancel := context.WithTimeout(ctx, 8*time.Minute)
	defer wcancel()
	if err := vm.WaitConsole(wctx, lab.ImageMarker+n.name); err != nil {
		t.Fatalf("%s: %v\n%s", n.name, err, lab.Tail(vm.Console(), 40))
	}
	var ev lab.LogEntry
	for _, e := range app.Entries() {
		if e.Msg == "node event" && e.MAC == n.mac && e.State == "verified" && e.Time.After(since) {
			ev = e
		}
	}
	if ev.Total == 0 {
		t.Fatalf("no verified event from %s", n.name)
	}
	return ev
}

// TestCacheDisk: a node with a cache disk downloads its image once; after
// a reboot it reuses the cache (at most 5% downloaded); after a new version
// that changes one file it downloads only part; bytes flipped on the cache
// disk are found and fetched again.
func TestCacheDisk(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	bin := moobiBinary(t)
	cache := lab.TestCacheDir(t)
	kernel, err := lab.Kernel(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	modules, err := lab.KernelModulesDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	initrd := nodeInitrd(t, ctx, bin)
	l := lab.NewForTest(t, ctx)
	node := rackNode{"cached-node", "52:54:00:ca:00:01", lab.BIOS}
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	writeFile(t, cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %[1]s/data
  ipxe_dir: /usr/lib/ipxe
  node_initrd: %[2]s
profiles:
  web:
    image: web
    cache: /dev/vda
    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on
hosts:
  %[3]s:
    mac: %[4]s
    profile: web
`, l.Dir(), initrd, node.name, node.mac))
	image := filepath.Join(l.Dir(), "image.squashfs")
	if err := lab.BuildBootImage(image, 32); err != nil {
		t.Fatal(err)
	}
	publish := func(img string) {
		if out, err := exec.CommandContext(ctx, bin, "image", "add", "--config", cfg, "--name", "web", "--kernel", kernel, "--rootfs", img, "--modules", modules).CombinedOutput(); err != nil {
			t.Fatalf("image add: %v\n%s", err, out)
		}
	}
	publish(image)
	disk := filepath.Join(l.Dir(), "cache.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(disk, 128<<20)
	app := startAppliance(t, ctx, l, bin, cfg)

	first := bootOnce(t, ctx, l, app, node, disk)
	t.Logf("first boot: %d bytes, reused %d, downloaded %d", first.Total, first.Reused, first.Total-first.Reused)
	if first.Reused != 0 {
		t.Fatalf("first boot reused %d bytes of an empty disk", first.Reused)
	}

	second := bootOnce(t, ctx, l, app, node, disk)
	got := second.Total - second.Reused
	t.Logf("reboot: reused %d of %d bytes, downloaded %d (%.2f%%)", second.Reused, second.Total, got, 100*float64(got)/float64(second.Total))
	if float64(got) > 0.05*float64(second.Total) {
		t.Fatalf("reboot downloaded %d bytes, more than 5%% of the image", got)
	}

	// A new version whose only change is one file.
	root := filepath.Join(l.Dir(), "v2-root")
	if out, err := exec.Command("unsquashfs", "-d", root, image).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	writeFile(t, filepath.Join(root, "etc", "motd"), "version 2\n")
	image2 := filepath.Join(l.Dir(), "image2.squashfs")
	if out, err := exec.Command("mksquashfs", root, image2, "-noappend", "-all-root", "-quiet", "-noD").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	publish(image2)
	third := bootOnce(t, ctx, l, app, node, disk)
	got = third.Total - third.Reused
	t.Logf("new version %s with one file changed: reused %d of %d bytes, downloaded %d (%.2f%%)", third.Version, third.Reused, third.Total, got, 100*float64(got)/float64(third.Total))
	if third.Version == second.Version || third.Reused == 0 || got >= third.Total/2 {
		t.Fatalf("new version: version %s (was %s), reused %d, downloaded %d", third.Version, second.Version, third.Reused, got)
	}

	// Bytes flipped on the cache disk between boots.
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("corruption"), 10<<20)
	f.Close()
	fourth := bootOnce(t, ctx, l, app, node, disk)
	got = fourth.Total - fourth.Reused
	t.Logf("after corrupting the cache: reused %d, downloaded %d", fourth.Reused, got)
	if got <= 0 || float64(got) > 0.05*float64(fourth.Total) {
		t.Fatalf("after corrupting 10 bytes: downloaded %d bytes, want the damaged piece(s) only", got)
	}
}

// TestNodeFailures: a node whose cache device is missing says so on its
// console and in a failed event, retries; when the appliance then goes
// away it says that too; after moobi.reboot_after it reboots. It never
// pivots into an image.
func TestNodeFailures(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bin := moobiBinary(t)
	cache := lab.TestCacheDir(t)
	kernel, err := lab.Kernel(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	modules, err := lab.KernelModulesDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	initrd := nodeInitrd(t, ctx, bin)
	l := lab.NewForTest(t, ctx)
	node := rackNode{"broken-node", "52:54:00:fa:00:01", lab.BIOS}
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	writeFile(t, cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %[1]s/data
  ipxe_dir: /usr/lib/ipxe
  node_initrd: %[2]s
profiles:
  web:
    image: web
    cache: /dev/vda
    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on moobi.reboot_after=60s
hosts:
  %[3]s:
    mac: %[4]s
    profile: web
`, l.Dir(), initrd, node.name, node.mac))
	image := filepath.Join(l.Dir(), "image.squashfs")
	if err := lab.BuildBootImage(image, 1); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, bin, "image", "add", "--config", cfg, "--name", "web", "--kernel", kernel, "--rootfs", image, "--modules", modules).CombinedOutput(); err != nil {
		t.Fatalf("image add: %v\n%s", err, out)
	}
	app, err := l.StartAppliance(ctx, bin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: node.name, MAC: node.mac, Firmware: node.fw, MemoryMB: 512}) // no disk
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer wcancel()
	if err := vm.WaitConsole(wctx, "MOOBI: boot failed: cache device /dev/vda"); err != nil {
		t.Fatalf("%v\n%s", err, lab.Tail(vm.Console(), 30))
	}
	if err := app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool {
		return e.Msg == "node event" && e.MAC == node.mac && e.State == "failed" && strings.Contains(e.Reason, "cache device /dev/vda")
	}); err != nil {
		t.Fatalf("no failed event with the reason: %v", err)
	}
	out, _ := curl(ctx, l, "http://"+lab.ApplianceAddr+":8080/v1/nodes/"+node.mac)
	if !strings.Contains(out, `"state": "failed"`) || !strings.Contains(out, "cache device /dev/vda") {
		t.Fatalf("/v1/nodes/MAC does not show the failure:\n%s", out)
	}

	// The appliance goes away: the next attempts cannot reach it.
	if err := app.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitConsole(wctx, "MOOBI: boot failed: boot config:"); err != nil {
		t.Fatalf("%v\n%s", err, lab.Tail(vm.Console(), 30))
	}
	// After moobi.reboot_after the node reboots; -no-reboot makes qemu exit.
	select {
	case <-vm.Done():
	case <-wctx.Done():
		t.Fatalf("the node did not reboot after moobi.reboot_after\n%s", lab.Tail(vm.Console(), 20))
	}
	c := vm.Console()
	if !strings.Contains(c, "rebooting") || strings.Contains(c, lab.ImageMarker) {
		t.Fatalf("console:\n%s", lab.Tail(c, 20))
	}
	t.Logf("console:\n%s", lab.Tail(c, 8))
}
