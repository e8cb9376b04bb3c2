package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/images/catalog"
	"moobi/lab"
)

// rackHosts names n hosts node01… with MACs 52:54:00:PREFIX:00:01….
func rackHosts(n int, prefix byte) (map[string]string, []string) {
	hosts := map[string]string{}
	var macs []string
	for i := 0; i < n; i++ {
		mac := fmt.Sprintf("52:54:00:%02x:00:%02x", prefix, i+1)
		hosts[fmt.Sprintf("node%02d", i+1)] = mac
		macs = append(macs, mac)
	}
	return hosts, macs
}

// manifest reads the catalog's manifest of image web's version.
func (il *imageLab) manifest(t *testing.T, version string) catalog.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(il.l.Dir(), "data", "images", "web", version, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m catalog.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest of %s: %v", version, err)
	}
	return m
}

// waitNodes polls the appliance's /v1/nodes until cond holds for the nodes
// (by MAC), and returns them.
func (il *imageLab) waitNodes(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func(map[string]nodeView) bool) map[string]nodeView {
	t.Helper()
	var m map[string]nodeView
	last := "no answer"
	eventually(t, ctx, timeout, 250*time.Millisecond, func() (bool, string) {
		got, _, err := listNodes(ctx, il.l, "http://"+lab.ApplianceAddr+":8080/v1/nodes")
		if err == nil {
			m = got
			if cond(m) {
				return true, ""
			}
			last = fmt.Sprintf("%+v", m)
		}
		return false, fmt.Sprintf("waiting for %s; last /v1/nodes: %s", what, last)
	})
	return m
}

// allNodes reports whether every MAC is present and satisfies ok.
func allNodes(macs []string, ok func(nodeView) bool) func(map[string]nodeView) bool {
	return func(m map[string]nodeView) bool {
		for _, mac := range macs {
			n, found := m[mac]
			if !found || !ok(n) {
				return false
			}
		}
		return true
	}
}

// checkVerified checks that a node verified version m of image web and
// that its cache file holds exactly that version's rootfs.
func checkVerified(t *testing.T, r fetchResult, m catalog.Manifest) {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := m.Files[catalog.FileRootfs]
	if r.version != m.Version || r.size != want.Size {
		t.Fatalf("%s verified version %q, %d bytes; want %s, %d bytes\n%s", r.node, r.version, r.size, m.Version, want.Size, lab.Tail(r.output, 20))
	}
	f, err := os.Open(r.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if n, err := io.Copy(h, io.LimitReader(f, want.Size)); err != nil || n != want.Size {
		t.Fatalf("%s: read %d of %d bytes of %s: %v", r.node, n, want.Size, r.path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		t.Fatalf("%s: %s has sha256 %s, %s's manifest says %s", r.node, r.path, got, m.Version, want.SHA256)
	}
}

// appUploadedBT is what the appliance's seeder has uploaded of image web
// over BitTorrent, all versions together (moobi_swarm_uploaded_bytes_total).
func (il *imageLab) appUploadedBT(t *testing.T, ctx context.Context) float64 {
	t.Helper()
	metrics, err := curl(ctx, il.l, "http://"+lab.ApplianceAddr+":8080/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return max(0, metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="bittorrent"}`))
}

// appUploadedHTTP is what the appliance has served of image web as its web
// seed (moobi_swarm_uploaded_bytes_total, protocol http).
func (il *imageLab) appUploadedHTTP(t *testing.T, ctx context.Context) float64 {
	t.Helper()
	metrics, err := curl(ctx, il.l, "http://"+lab.ApplianceAddr+":8080/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return max(0, metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="http"}`))
}

// waitTrackerPeers polls the appliance's metrics until its tracker holds n
// peers of image web (moobi_swarm_peers: the nodes, the appliance apart);
// it fails the test after timeout.
func (il *imageLab) waitTrackerPeers(t *testing.T, ctx context.Context, n int, timeout time.Duration) {
	t.Helper()
	last := -1.0
	eventually(t, ctx, timeout, 250*time.Millisecond, func() (bool, string) {
		if metrics, err := curl(ctx, il.l, "http://"+lab.ApplianceAddr+":8080/metrics"); err == nil {
			last = max(0, metricValue(metrics, `moobi_swarm_peers{image="web",role="seeder"}`)) +
				max(0, metricValue(metrics, `moobi_swarm_peers{image="web",role="leecher"}`))
		}
		return last >= float64(n), fmt.Sprintf("the appliance's tracker holds %.0f of the %d nodes", last, n)
	})
}

// rxBytes is the sum of the bytes the namespaces' eth0 received.
func rxBytes(t *testing.T, ctx context.Context, nss []string) int64 {
	t.Helper()
	var sum int64
	for _, ns := range nss {
		out, err := exec.CommandContext(ctx, "ip", "-n", ns, "-j", "-s", "link", "show", "dev", "eth0").Output()
		if err != nil {
			t.Fatalf("ip -n %s -s link: %v", ns, err)
		}
		var links []struct {
			Stats struct {
				RX struct {
					Bytes int64 `json:"bytes"`
				} `json:"rx"`
			} `json:"stats64"`
		}
		if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
			t.Fatalf("ip -n %s -s link: %v\n%s", ns, err, out)
		}
		sum += links[0].Stats.RX.Bytes
	}
	return sum
}

// TestPublishDuringFetch: 4 nodes fetch image web's v1 over slow links;
// once all are downloading, v2 (another rootfs) is published. Each of the
// 4 verifies v1 — the version it started with — and its cache holds v1's
// bytes exactly; the appliance keeps seeding v1 after the publish; a node
// that starts afterwards gets v2.
func TestPublishDuringFetch(t *testing.T) {
	lab.RequireRoot(t, "curl", "tc", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const n = 4 // and one late node
	hosts, macs := rackHosts(n+1, 0x5b)
	il := newImageLab(t, ctx, 32, hosts)
	v2dir := filepath.Join(il.l.Dir(), "v2")
	if err := os.Mkdir(v2dir, 0o755); err != nil {
		t.Fatal(err)
	}
	v2rootfs := makeSquashfs(t, v2dir, 32)
	// 32 MiB through the appliance's 20 Mbit/s: at least 13 s before the
	// rack holds the whole image, whatever the nodes exchange.
	shape(t, ctx, il.l.ApplianceNS(), "br0", "20mbit")
	var nss []string
	for i := 0; i <= n; i++ {
		nss = append(nss, il.addNode(t, ctx, i, "20mbit"))
	}
	v1 := il.manifest(t, "v1")
	start := time.Now()
	fr := il.startFetch(t, ctx, nss[:n], macs[:n])
	il.waitNodes(t, ctx, time.Minute, "every node downloading v1", allNodes(macs[:n], func(p nodeView) bool {
		return p.State == "fetching" && p.Version == "v1" && p.Done > 0 && p.Done < p.Total
	}))
	t.Logf("all %d nodes downloading v1 after %.1fs; publishing v2", n, time.Since(start).Seconds())

	published := time.Now()
	kernel := filepath.Join(il.l.Dir(), "data", "images", "web", "v1", catalog.FileKernel)
	out, err := exec.CommandContext(ctx, il.bin, "image", "add", "--config", il.cfg, "--name", "web", "--kernel", kernel, "--rootfs", v2rootfs).CombinedOutput()
	if err != nil {
		t.Fatalf("moobi image add: %v\n%s", err, out)
	}
	v2 := il.manifest(t, "v2")
	if v2.Files[catalog.FileRootfs].SHA256 == v1.Files[catalog.FileRootfs].SHA256 {
		t.Fatal("v1 and v2 have the same rootfs")
	}
	if err := il.app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool { return e.Msg == "seeding" && e.Version == "v2" }); err != nil {
		t.Fatalf("the appliance never seeded v2: %v", err)
	}
	atPublish := il.appUploadedBT(t, ctx)
	t.Logf("v2 published and seeded %.1fs after the publish started; the appliance had uploaded %.0f bytes", time.Since(published).Seconds(), atPublish)

	results := fr.wait()
	afterV1 := il.appUploadedBT(t, ctx)
	for _, r := range results {
		checkVerified(t, r, v1)
		t.Logf("%s: verified v1 in %.1fs, from peers %d, from web seed %d", r.node, r.seconds, r.fromPeers, r.fromSeed)
	}
	// Only v1 was being fetched: whatever the seeder uploaded since v2 was
	// seeded is v1, served after the publish.
	if afterV1 <= atPublish {
		t.Fatalf("the appliance uploaded nothing after the publish (%.0f bytes before, %.0f after) while nodes still needed v1", atPublish, afterV1)
	}
	if strings.Contains(il.app.Log(), "stopped seeding a pruned version") {
		t.Fatalf("the seeder dropped a version:\n%s", lab.Tail(il.app.Log(), 20))
	}
	il.waitNodes(t, ctx, 30*time.Second, "the appliance showing v1 verified on every node", allNodes(macs[:n], func(p nodeView) bool {
		return p.State == "verified" && p.Version == "v1"
	}))
	t.Logf("after the publish the appliance's seeder uploaded %.0f bytes of v1 (%.2f× the image)", afterV1-atPublish, (afterV1-atPublish)/float64(v1.Files[catalog.FileRootfs].Size))

	late := il.startFetch(t, ctx, nss[n:], macs[n:]).wait()[0]
	checkVerified(t, late, v2)
	t.Logf("%s started after the publish: verified v2 in %.1fs; whole test %.1fs", late.node, late.seconds, time.Since(start).Seconds())
}

// TestApplianceKilledMidRack: 6 nodes fetch over BitTorrent while the
// appliance's link is shaped; once each holds part of the image, the
// appliance is SIGKILLed. The nodes keep exchanging pieces among
// themselves while it is gone — longer than the tracker's interval, so that
// every node's announce fails meanwhile; it is started again on the same
// config and data_dir, and within seconds every node has announced to its
// tracker again (the BitTorrent client alone would wait a minute after a
// failed announce) and fetches from its seeder; every node verifies the
// image, and the appliance lists them.
func TestApplianceKilledMidRack(t *testing.T) {
	lab.RequireRoot(t, "curl", "tc", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const n = 6
	hosts, macs := rackHosts(n, 0x5c)
	il := newImageLab(t, ctx, 48, hosts)
	shape(t, ctx, il.l.ApplianceNS(), "br0", "40mbit")
	var nss []string
	for i := 0; i < n; i++ {
		nss = append(nss, il.addNode(t, ctx, i, "100mbit"))
	}
	m := il.manifest(t, "v1")
	size := m.Files[catalog.FileRootfs].Size
	start := time.Now()
	fr := il.startFetch(t, ctx, nss, macs)
	il.waitNodes(t, ctx, time.Minute, "every node holding part of the image", allNodes(macs, func(p nodeView) bool {
		return p.State == "fetching" && p.Done >= p.Total/4 && p.Done < p.Total
	}))
	rx0 := rxBytes(t, ctx, nss)
	il.app.Kill()
	killed := time.Now()
	t.Logf("appliance SIGKILLed %.1fs after the nodes started", killed.Sub(start).Seconds())

	// While it is gone, whatever the nodes receive comes from each other.
	// Wait until that exchange settles: nothing more for 5 s (the nodes
	// hold all the pieces any of them had), or 40 s; and at least minDown,
	// more than the tracker's 10 s interval: each node announces, and
	// fails, while the appliance is gone.
	const minDown = 12 * time.Second
	var rx int64
	lastGrowth, prev := time.Now(), rx0
	for (time.Since(lastGrowth) < 5*time.Second || time.Since(killed) < minDown) && time.Since(killed) < 40*time.Second {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		if rx = rxBytes(t, ctx, nss); rx-prev > 64<<10 {
			lastGrowth, prev = time.Now(), rx
		}
	}
	down := rx - rx0
	verifiedWhileDown := fr.verifiedCount()
	t.Logf("appliance down %.1fs: nodes received %d bytes (%.2f× the image) from each other, %d of %d verified meanwhile",
		time.Since(killed).Seconds(), down, float64(down)/float64(size), verifiedWhileDown, n)
	// The nodes fetched from each other before the kill too, so they hold
	// mostly the same pieces: what is left to exchange is the pieces in
	// flight, from well under 1 MiB to a few. At least one piece's worth
	// must have arrived.
	if down < m.PieceLength {
		t.Fatalf("nodes received only %d bytes from each other while the appliance was down, less than a %d-byte piece", down, m.PieceLength)
	}
	if errs := fr.failures(); len(errs) > 0 {
		t.Fatalf("a node gave up while the appliance was down: %v", errs[0])
	}

	restarted := time.Now()
	il.app = startAppliance(t, ctx, il.l, il.bin, il.cfg)
	serving := time.Now()
	// Every node was known before the kill: the restarted appliance lists
	// them at once, from data_dir/state/nodes.json.
	il.waitNodes(t, ctx, 5*time.Second, "the restarted appliance listing every node", allNodes(macs, func(p nodeView) bool { return p.State != "" }))
	// The nodes rejoin the swarm as soon as the appliance answers their
	// progress events (every 2 s): its restarted tracker knows no peer, and
	// on their own they would announce again only a minute after their
	// failed announce, fetching over the web seed meanwhile.
	il.waitTrackerPeers(t, ctx, n, 20*time.Second)
	t.Logf("the restarted tracker held all %d nodes %.1fs after the appliance served again (%.1fs after the restart)", n, time.Since(serving).Seconds(), time.Since(restarted).Seconds())
	fr.waitVerified()
	t.Logf("all verified %.1fs after the restart (%.1fs after the start)", time.Since(restarted).Seconds(), time.Since(start).Seconds())
	// The restarted appliance's counters start at 0: what it served since.
	btAfter, webAfter := il.appUploadedBT(t, ctx), il.appUploadedHTTP(t, ctx)
	t.Logf("after the restart the appliance served %.0f bytes over BitTorrent and %.0f over its web seed", btAfter, webAfter)
	il.waitNodes(t, ctx, time.Minute, "the restarted appliance showing every node verified", allNodes(macs, func(p nodeView) bool {
		return p.State == "verified" && p.Version == "v1" && p.Done == p.Total
	}))
	results := fr.wait()
	var peers, seed int64
	for _, r := range results {
		checkVerified(t, r, m)
		peers += r.fromPeers
		seed += r.fromSeed
		t.Logf("%s: verified v1 in %.1fs, from peers %d, from the appliance's seeder %d, from web seed %d", r.node, r.seconds, r.fromPeers, r.fromApp, r.fromSeed)
	}
	t.Logf("%d nodes, %d-byte image: %d bytes between nodes while the appliance was down; in all from peers %d, web seed %d; test %.1fs",
		n, size, down, peers, seed, time.Since(start).Seconds())
}
