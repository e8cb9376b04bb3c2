package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"

	"moobi/lab"
)

var (
	initrdOnce sync.Once
	initrdPath string
	signingKey string
	initrdErr  error
)

// nodeInitrd returns the node initramfs and the boot signing key it trusts
// (shared through the test cache): appliances that boot it must sign with
// that key (appliance.signing_key). Its base is built once per test
// process, or taken from the cache when its sources have not changed.
func nodeInitrd(t *testing.T, ctx context.Context, bin string) (initrd, key string) {
	t.Helper()
	initrdOnce.Do(func() {
		src, _ := filepath.Abs("..")
		cache := lab.TestCacheDir(t)
		if signingKey, initrdErr = lab.SigningKey(cache); initrdErr != nil {
			return
		}
		start := time.Now()
		var built bool
		initrdPath, built, initrdErr = lab.NodeInitrd(ctx, cache, bin, src, signingKey)
		if initrdErr == nil && built {
			st, _ := os.Stat(initrdPath)
			t.Logf("node initramfs: %d bytes gzip'd, built in %.0fs", st.Size(), time.Since(start).Seconds())
		}
	})
	if initrdErr != nil {
		t.Fatal(initrdErr)
	}
	return initrdPath, signingKey
}

type rackNode struct {
	name, mac string
	fw        lab.Firmware
}

// TestRackBootsImage: VMs (BIOS and UEFI) PXE-boot an image profile: the
// node initramfs fetches a ≥64 MiB image over BitTorrent, verifies it,
// pivots into it, and the image's own init prints the node's hostname. The
// appliance uploads less than twice the image. Each node's timeline shows
// every phase of its boot, the phase histograms count what the timelines
// show, and the timelines survive an appliance restart.
func TestRackBootsImage(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", lab.OVMFCode)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
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
	late := rackNode{"rack1-late", "52:54:00:b0:00:99", lab.BIOS} // fetched with `moobi node fetch`
	r := newVMRack(t, ctx, vmRackOptions{
		hosts:    append(append([]rackNode{}, rack...), late),
		imageMiB: 64,
		cmdline:  "moobi.reboot_after=5m",
		// Under TCG the VMs' CPUs make slow peers next to a native
		// appliance: cap the appliance's seeding as an operator would on a
		// shared uplink.
		appliance: "seed_upload_mbit: 8",
	})
	l, app := r.l, r.app
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
	metrics, err := curl(ctx, l, r.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	bt := max(0, metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="bittorrent"}`))
	web := max(0, metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="http"}`))
	t.Logf("%d nodes booted a %d-byte image in %.1fs; the appliance uploaded %.0f bytes (%.2f× the image, %.0f over HTTP)",
		len(rack), r.size, time.Since(start).Seconds(), bt+web, (bt+web)/float64(r.size), web)
	if bt+web >= 2*float64(r.size) {
		t.Fatalf("the appliance uploaded %.0f bytes, twice the image or more", bt+web)
	}
	if running := metricValue(metrics, `moobi_nodes{state="running"}`); running != float64(len(rack)) {
		t.Errorf("moobi_nodes{state=\"running\"} = %v, want %d", running, len(rack))
	}
	timelines := checkTimelines(t, ctx, r, rack, metrics)

	// A node that comes later is served by the running nodes' seeders
	// (started before their pivot): it gets bytes from them, not only from
	// the appliance, and what it counts as from the appliance's seeder is
	// no more than the appliance uploaded meanwhile.
	ns, err := l.AddHost(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "addr", "add", "10.99.0.50/24", "dev", "eth0")
	il := &imageLab{l: l, app: app, bin: r.bin, cfg: r.cfg, size: r.size, pubkey: r.key}
	res := il.fetchAll(t, ctx, []string{ns}, []string{late.mac}, "--webseed-after", "1h")[0]
	if res.err != nil {
		t.Fatal(res.err)
	}
	after, _ := curl(ctx, l, r.url("/metrics"))
	delta := max(0, metricValue(after, `moobi_swarm_uploaded_bytes_total{image="web",protocol="bittorrent"}`)) - bt
	t.Logf("late node: %d bytes from running nodes, %d from the appliance's seeder (which uploaded %.0f meanwhile)", res.fromPeers, res.fromApp, delta)
	// However the node told its sources apart, it got more over
	// BitTorrent than the appliance uploaded meanwhile.
	if res.fromPeers <= 0 || float64(res.fromPeers+res.fromApp) <= delta {
		t.Fatal("the running nodes served nothing: their seeders did not survive the pivot")
	}
	if float64(res.fromApp) > delta {
		t.Fatalf("the late node counted %d bytes from the appliance's seeder, which uploaded only %.0f", res.fromApp, delta)
	}

	// The timelines survive a restart of the appliance.
	il.restart(t, ctx)
	nodes := getNodes(t, ctx, r)
	for _, n := range rack {
		if diff := cmp.Diff(timelines[n.mac], settled(nodes[n.mac].Phases)); diff != "" {
			t.Errorf("%s: timeline after a restart differs (-before +after):\n%s", n.name, diff)
		}
	}
}

// nodeView is what the tests read of a node in /v1/nodes (the list) and
// /v1/nodes/MAC.
type nodeView struct {
	Name      string      `json:"name"`
	MAC       string      `json:"mac"`
	State     string      `json:"state"`
	Reason    string      `json:"reason"`
	LastEvent string      `json:"last_event"`
	Address   string      `json:"address"`
	Version   string      `json:"version"`
	Boots     int         `json:"boots"`
	Done      int64       `json:"done"`
	Total     int64       `json:"total"`
	Reused    int64       `json:"reused"`
	FromPeers int64       `json:"from_peers"`
	Phases    []phaseView `json:"phases"`
	Events    []eventView `json:"events"`
}

// eventView is one of a node's events (the events field of /v1/nodes/MAC).
type eventView struct {
	State   string `json:"state"`
	Message string `json:"message"`
}

type phaseView struct {
	State   string    `json:"state"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Seconds float64   `json:"seconds"`
}

// settled returns the phases with the open one's running duration zeroed.
func settled(ps []phaseView) []phaseView {
	ps = append([]phaseView(nil), ps...)
	if k := len(ps) - 1; k >= 0 && ps[k].End.IsZero() {
		ps[k].Seconds = 0
	}
	return ps
}

// listNodes reads the appliance's /v1/nodes at url, by MAC; on error it
// returns what it read.
func listNodes(ctx context.Context, l *lab.Lab, url string) (map[string]nodeView, string, error) {
	out, err := curl(ctx, l, url)
	if err != nil {
		return nil, out, fmt.Errorf("GET %s: %w", url, err)
	}
	var list []nodeView
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, out, fmt.Errorf("%s: %w", url, err)
	}
	m := make(map[string]nodeView, len(list))
	for _, n := range list {
		m[n.MAC] = n
	}
	return m, out, nil
}

func getNodes(t *testing.T, ctx context.Context, r *vmRack) map[string]nodeView {
	t.Helper()
	m, out, err := listNodes(ctx, r.l, r.url("/v1/nodes"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return m
}

// checkTimelines checks that each node's timeline went through every boot
// phase in order, and that the phase histograms count exactly the phases
// the timelines closed. It returns the timelines (with the open running
// phase's duration zeroed) by MAC.
func checkTimelines(t *testing.T, ctx context.Context, r *vmRack, rack []rackNode, metrics string) map[string][]phaseView {
	t.Helper()
	nodes := getNodes(t, ctx, r)
	want := []string{"dhcp", "firmware", "kernel", "fetching", "verified", "running"}
	closed := map[string]int{}
	out := map[string][]phaseView{}
	for _, n := range rack {
		v := nodes[n.mac]
		var got []string
		for i, p := range v.Phases {
			got = append(got, p.State)
			if !p.End.IsZero() {
				closed[p.State]++
				if p.End.Before(p.Start) || (i+1 < len(v.Phases) && !v.Phases[i+1].Start.Equal(p.End)) {
					t.Errorf("%s: phase %s ends at %v, next starts at %v", n.name, p.State, p.End, v.Phases[i+1].Start)
				}
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: timeline phases (-want +got):\n%s", n.name, diff)
		}
		var line []string
		for _, p := range v.Phases {
			line = append(line, fmt.Sprintf("%s %.1fs", p.State, p.Seconds))
		}
		t.Logf("%s (%s, %s): %s", n.name, n.fw, v.Address, strings.Join(line, " → "))
		out[n.mac] = settled(v.Phases)
	}
	for _, phase := range want[:len(want)-1] {
		if got := metricValue(metrics, `moobi_boot_phase_seconds_count{phase="`+phase+`"}`); got != float64(closed[phase]) {
			t.Errorf("moobi_boot_phase_seconds_count{phase=%q} = %v, the timelines closed %d", phase, got, closed[phase])
		}
	}
	if got := metricValue(metrics, `moobi_boot_seconds_count`); got != float64(len(rack)) {
		t.Errorf("moobi_boot_seconds_count = %v, want %d", got, len(rack))
	}
	// UEFI firmware loads iPXE over TFTP; qemu's BIOS boot ROM is iPXE.
	uefi := 0
	for _, n := range rack {
		if n.fw == lab.UEFI {
			uefi++
		}
	}
	if got := metricValue(metrics, `moobi_tftp_transfers_total{result="ok"}`); got < float64(uefi) {
		t.Errorf("moobi_tftp_transfers_total{result=\"ok\"} = %v, want at least one per UEFI node (%d)", got, uefi)
	}
	return out
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

// TestCacheDisk: a node with a cache disk whose first download is cut by a
// power-off resumes from its cache; after a reboot it reuses the cache (at
// most 5% downloaded); after a new version
// that changes one file it downloads only part; bytes flipped on the cache
// disk are found and fetched again.
func TestCacheDisk(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	node := rackNode{"cached-node", "52:54:00:ca:00:01", lab.BIOS}
	r := newVMRack(t, ctx, vmRackOptions{hosts: []rackNode{node}, imageMiB: 32, profile: "cache: /dev/vda",
		// Slow enough (about 1 MB/s) to power the first boot off mid-download.
		appliance: "seed_upload_mbit: 8"})
	l, app, image := r.l, r.app, r.image
	disk := filepath.Join(l.Dir(), "cache.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(disk, 128<<20)

	// The first boot is killed (power cut) in the middle of its download;
	// the next one resumes from what reached the cache disk.
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: node.name, MAC: node.mac, Firmware: node.fw, MemoryMB: 768, DiskPath: disk})
	if err != nil {
		t.Fatal(err)
	}
	killedAt := waitProgress(t, ctx, r, node.mac, 0.25, 8*time.Minute)
	vm.Stop()
	t.Logf("first boot killed with %d of %d bytes downloaded", killedAt.Done, killedAt.Total)
	first := bootOnce(t, ctx, l, app, node, disk)
	t.Logf("after the kill: %d bytes, reused %d, downloaded %d", first.Total, first.Reused, first.Total-first.Reused)
	if first.Reused == 0 || first.Reused >= first.Total {
		t.Fatalf("the boot after a killed download reused %d of %d bytes; want what the killed boot had fetched", first.Reused, first.Total)
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
	r.publish(t, ctx, image2)
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
// console and in a failed event, retries; a node whose site DHCP server
// stops answering after it loaded its kernel says so on its console; when
// the appliance then goes away the first node says that too, and after
// moobi.reboot_after it reboots. Neither pivots into an image.
func TestNodeFailures(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	node := rackNode{"broken-node", "52:54:00:fa:00:01", lab.BIOS}
	noDHCP := rackNode{"nodhcp-node", "52:54:00:fa:00:02", lab.BIOS}
	r := newVMRack(t, ctx, vmRackOptions{
		hosts:    []rackNode{node, noDHCP},
		imageMiB: 1,
		profile:  "cache: /dev/vda",
		cmdline:  "moobi.reboot_after=60s",
	})
	l, app := r.l, r.app
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
	out, _ := curl(ctx, l, r.url("/v1/nodes/"+node.mac))
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

	// The appliance comes back, still showing the failure it was told of.
	r.app = startAppliance(t, ctx, l, r.bin, r.cfg)
	if n := getNodes(t, ctx, r)[node.mac]; n.State != "failed" {
		t.Errorf("after a restart %s is %q, want failed", node.name, n.State)
	}

	// The site DHCP server dies once the second node's firmware has loaded
	// its kernel: the node client's own DHCP gets no lease. It cannot tell
	// the appliance, which shows the last thing it saw (the kernel fetch).
	vm2, err := l.StartVM(ctx, lab.VMOptions{Name: noDHCP.name, MAC: noDHCP.mac, Firmware: noDHCP.fw, MemoryMB: 512, DiskPath: emptyDisk(t, l)})
	if err != nil {
		t.Fatal(err)
	}
	defer vm2.Stop()
	waitNodeState(t, ctx, r, noDHCP.mac, "kernel", 4*time.Minute)
	if err := l.StopSiteDHCP(); err != nil {
		t.Fatal(err)
	}
	w2ctx, w2cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer w2cancel()
	if err := vm2.WaitConsole(w2ctx, "MOOBI: boot failed: no DHCP lease on"); err != nil {
		t.Fatalf("%v\n%s", err, lab.Tail(vm2.Console(), 30))
	}
	if n := getNodes(t, ctx, r)[noDHCP.mac]; n.State != "kernel" {
		t.Errorf("%s: state %q, want kernel (the last thing the appliance saw)", noDHCP.name, n.State)
	}
	t.Logf("%s console:\n%s", noDHCP.name, lab.Tail(vm2.Console(), 4))
	if strings.Contains(vm2.Console(), lab.ImageMarker) {
		t.Fatalf("%s pivoted without a network", noDHCP.name)
	}
}

// waitNodeState polls /v1/nodes until the node with mac is in state.
func waitNodeState(t *testing.T, ctx context.Context, r *vmRack, mac, state string, timeout time.Duration) {
	t.Helper()
	eventually(t, ctx, timeout, 500*time.Millisecond, func() (bool, string) {
		n := getNodes(t, ctx, r)[mac]
		return n.State == state, fmt.Sprintf("%s is %q, want %q", mac, n.State, state)
	})
}

// waitProgress polls /v1/nodes until the node with mac reports at least
// fraction of its image downloaded.
func waitProgress(t *testing.T, ctx context.Context, r *vmRack, mac string, fraction float64, timeout time.Duration) nodeView {
	t.Helper()
	var n nodeView
	eventually(t, ctx, timeout, 250*time.Millisecond, func() (bool, string) {
		n = getNodes(t, ctx, r)[mac]
		if n.State == "verified" || n.State == "running" {
			t.Fatalf("%s is %s with %d of %d bytes: never caught mid-download", mac, n.State, n.Done, n.Total)
		}
		return n.State == "fetching" && n.Total > 0 && float64(n.Done) >= fraction*float64(n.Total),
			fmt.Sprintf("%s is %s with %d of %d bytes, want %.0f%% while fetching", mac, n.State, n.Done, n.Total, 100*fraction)
	})
	return n
}

// emptyDisk returns a fresh 64 MiB cache disk image.
func emptyDisk(t *testing.T, l *lab.Lab) string {
	t.Helper()
	disk := filepath.Join(l.Dir(), fmt.Sprintf("disk-%d.img", time.Now().UnixNano()))
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	return disk
}
