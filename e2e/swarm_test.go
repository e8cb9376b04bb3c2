package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"moobi/lab"
)

// makeSquashfs builds a real squashfs image holding sizeMiB of random data
// (lab.RandomSquashfs).
func makeSquashfs(t *testing.T, dir string, sizeMiB int) string {
	t.Helper()
	out, err := lab.RandomSquashfs(context.Background(), dir, sizeMiB)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// imageLab is a lab with an appliance serving one image profile "web" to
// the given hosts.
type imageLab struct {
	l      *lab.Lab
	app    *lab.Appliance
	bin    string
	cfg    string
	rootfs string
	size   int64
	// pubkey is the appliance's boot signing key file: `moobi node fetch
	// --pubkey` checks the boot config's signature with it.
	pubkey string
}

func newImageLab(t *testing.T, ctx context.Context, sizeMiB int, hosts map[string]string) *imageLab {
	t.Helper()
	bin := moobiBinary(t)
	kernel, err := lab.Kernel(ctx, lab.TestCacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	l := lab.NewForTest(t, ctx)
	var hs strings.Builder
	for name, mac := range hosts {
		fmt.Fprintf(&hs, "  %s:\n    mac: %s\n    profile: web\n", name, mac)
	}
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	writeFile(t, cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %s/data
  ipxe_dir: /usr/lib/ipxe
profiles:
  web:
    image: web
    cmdline: console=ttyS0
hosts:
%s`, l.Dir(), hs.String()))
	rootfs := makeSquashfs(t, l.Dir(), sizeMiB)
	st, _ := os.Stat(rootfs)
	out, err := exec.CommandContext(ctx, bin, "image", "add", "--config", cfg, "--name", "web", "--kernel", kernel, "--rootfs", rootfs).CombinedOutput()
	if err != nil {
		t.Fatalf("moobi image add: %v\n%s", err, out)
	}
	t.Logf("moobi image add:\n%s", out)
	app := startAppliance(t, ctx, l, bin, cfg)
	if err := app.WaitLog(ctx, 2*time.Minute, func(e lab.LogEntry) bool { return e.Msg == "seeding" }); err != nil {
		t.Fatalf("appliance never seeded the image: %v", err)
	}
	// The appliance created its signing key (appliance.signing_key's
	// default) and the public half beside it.
	pubkey := filepath.Join(l.Dir(), "data", "state", "boot-signing.pub")
	return &imageLab{l: l, app: app, bin: bin, cfg: cfg, rootfs: rootfs, size: st.Size(), pubkey: pubkey}
}

// addNode creates a node namespace at 10.99.0.(10+i) whose link is shaped
// to rate in both directions.
func (il *imageLab) addNode(t *testing.T, ctx context.Context, i int, rate string) string {
	t.Helper()
	ns, err := il.l.AddHost(ctx, fmt.Sprintf("n%d", i))
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.99.0.%d/24", 10+i), "dev", "eth0")
	if rate != "" {
		shape(t, ctx, ns, "eth0", rate)
		shape(t, ctx, il.l.ApplianceNS(), fmt.Sprintf("host%d", i+1), rate)
	}
	return ns
}

func shape(t *testing.T, ctx context.Context, ns, dev, rate string) {
	t.Helper()
	run(t, ctx, "tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "100ms")
}

func run(t *testing.T, ctx context.Context, name string, args ...string) {
	t.Helper()
	if b, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
}

// fetchResult is what one `moobi node fetch` printed.
type fetchResult struct {
	node                                       string
	version, path                              string // from its "verified IMAGE VERSION: PATH" line
	size, reused, fromPeers, fromApp, fromSeed int64
	seconds                                    float64
	err                                        error
	output                                     string
}

// fetchRun is a `moobi node fetch` running in each of some namespaces; a
// test may act on the lab while they fetch, then wait for them.
type fetchRun struct {
	results  []fetchResult
	verified sync.WaitGroup
	allDone  chan struct{}
	wg       sync.WaitGroup

	mu        sync.Mutex
	nVerified int
	gaveUp    []error // of nodes that ended without verifying
}

// fetchAll runs `moobi node fetch` in every namespace at once, keeps each
// seeding until all have verified, then stops them.
func (il *imageLab) fetchAll(t *testing.T, ctx context.Context, nss []string, macs []string, extra ...string) []fetchResult {
	t.Helper()
	return il.startFetch(t, ctx, nss, macs, extra...).wait()
}

// startFetch starts `moobi node fetch` in every namespace at once, caching
// into il.cacheDir(ns), and returns without waiting.
func (il *imageLab) startFetch(t *testing.T, ctx context.Context, nss []string, macs []string, extra ...string) *fetchRun {
	t.Helper()
	fr := &fetchRun{results: make([]fetchResult, len(nss)), allDone: make(chan struct{})}
	fr.verified.Add(len(nss))
	for i, ns := range nss {
		fr.wg.Add(1)
		go func() {
			defer fr.wg.Done()
			r := &fr.results[i]
			r.node = ns
			args := append([]string{"netns", "exec", ns, il.bin, "node", "fetch", "--server", "http://" + lab.ApplianceAddr + ":8080",
				"--mac", macs[i], "--dir", il.cacheDir(ns), "--seed-for", "10m", "--pubkey", il.pubkey}, extra...)
			cmd := exec.CommandContext(ctx, "ip", args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				r.err = err
				fr.verified.Done()
				return
			}
			counted := false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				r.output += line + "\n"
				if rest, ok := strings.CutPrefix(line, "verified "); ok {
					if f := strings.Fields(rest); len(f) == 3 {
						r.version, r.path = strings.TrimSuffix(f[1], ":"), f[2]
					}
				}
				if strings.HasPrefix(line, "size ") {
					fmt.Sscanf(line, "size %d reused %d from_peers %d from_appliance %d from_webseed %d seconds %f", &r.size, &r.reused, &r.fromPeers, &r.fromApp, &r.fromSeed, &r.seconds)
					fr.mu.Lock()
					fr.nVerified++
					fr.mu.Unlock()
					fr.verified.Done()
					counted = true
					go func() { <-fr.allDone; cmd.Process.Signal(os.Interrupt) }()
				}
			}
			err := cmd.Wait()
			if !counted {
				r.err = fmt.Errorf("node fetch in %s ended without verifying: %v\n%s", ns, err, lab.Tail(stderr.String(), 20))
				fr.mu.Lock()
				fr.gaveUp = append(fr.gaveUp, r.err)
				fr.mu.Unlock()
				fr.verified.Done()
			} else if err != nil {
				r.err = fmt.Errorf("node fetch in %s: %v", ns, err)
			}
			r.output += stderr.String()
		}()
	}
	return fr
}

// wait waits until every node has verified (or failed), stops their
// seeders and returns what each printed.
func (fr *fetchRun) wait() []fetchResult {
	fr.waitVerified()
	close(fr.allDone)
	fr.wg.Wait()
	return fr.results
}

// waitVerified waits until every node has verified (or failed), leaving
// the verified ones seeding.
func (fr *fetchRun) waitVerified() { fr.verified.Wait() }

// verifiedCount is how many nodes have verified so far.
func (fr *fetchRun) verifiedCount() int {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return fr.nVerified
}

// failures are the errors of the nodes that ended without verifying so far.
func (fr *fetchRun) failures() []error {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return append([]error(nil), fr.gaveUp...)
}

// cacheDir is the cache folder of the node in namespace ns.
func (il *imageLab) cacheDir(ns string) string {
	return filepath.Join(il.l.Dir(), "cache-"+ns)
}

// TestSwarmRack: 8 nodes fetch a 64 MiB image over BitTorrent while the
// appliance's link is shaped to a quarter of theirs; all verify, and the
// appliance uploads at most twice the image (the metric shows it).
func TestSwarmRack(t *testing.T) {
	lab.RequireRoot(t, "curl", "tc", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const n = 8
	hosts := map[string]string{}
	var macs []string
	for i := 0; i < n; i++ {
		mac := fmt.Sprintf("52:54:00:5a:00:%02x", i+1)
		hosts[fmt.Sprintf("node%02d", i+1)] = mac
		macs = append(macs, mac)
	}
	il := newImageLab(t, ctx, 64, hosts)
	// The appliance's own link (the bridge's local port) gets a quarter of
	// a node's.
	shape(t, ctx, il.l.ApplianceNS(), "br0", "50mbit")
	var nss []string
	for i := 0; i < n; i++ {
		nss = append(nss, il.addNode(t, ctx, i, "200mbit"))
	}
	start := time.Now()
	results := il.fetchAll(t, ctx, nss, macs)
	elapsed := time.Since(start)
	var peers, app, seed int64
	for _, r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.size != il.size {
			t.Fatalf("%s verified %d bytes, the image is %d", r.node, r.size, il.size)
		}
		if got := r.reused + r.fromPeers + r.fromApp + r.fromSeed; got < il.size {
			t.Errorf("%s accounts for %d bytes (reused, from peers, from the appliance's seeder, from web seed), the image is %d", r.node, got, il.size)
		}
		peers += r.fromPeers
		app += r.fromApp
		seed += r.fromSeed
		t.Logf("%s: %.1fs, from peers %d, from the appliance's seeder %d, from web seed %d", r.node, r.seconds, r.fromPeers, r.fromApp, r.fromSeed)
	}
	metrics, err := curl(ctx, il.l, "http://"+lab.ApplianceAddr+":8080/metrics")
	if err != nil {
		t.Fatal(err)
	}
	bt := metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="bittorrent"}`)
	web := max(0, metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="http"}`))
	if bt < 0 {
		t.Fatalf("metrics lack the appliance's BitTorrent upload:\n%s", metrics)
	}
	total := bt + web
	t.Logf("%d nodes, %d-byte image: all verified in %.1fs; appliance uploaded %.0f bytes (%.2f× the image; %.0f over HTTP); nodes got %d bytes from each other, %d from the appliance's seeder",
		n, il.size, elapsed.Seconds(), total, total/float64(il.size), web, peers, app)
	// What the nodes counted as from the appliance's seeder, it sent (its
	// figure also counts blocks a node already had from elsewhere).
	if app <= 0 || float64(app) > bt {
		t.Errorf("nodes counted %d bytes from the appliance's seeder, which uploaded %.0f over BitTorrent", app, bt)
	}
	if total > 2*float64(il.size) {
		t.Fatalf("appliance uploaded %.0f bytes, more than twice the %d-byte image", total, il.size)
	}
	if total < float64(il.size)/2 {
		t.Fatalf("appliance uploaded only %.0f bytes: the metric does not count what it served", total)
	}
}

// TestWebSeedOnly: a lone node that cannot reach any peer — its packets to
// the BitTorrent port are starved, so the appliance's seeder is out of
// reach too — still gets its image from the appliance's HTTP web seed.
func TestWebSeedOnly(t *testing.T) {
	lab.RequireRoot(t, "curl", "tc", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	il := newImageLab(t, ctx, 16, map[string]string{"node01": "52:54:00:3e:00:01"})
	ns := il.addNode(t, ctx, 1, "")
	// Starve everything the node sends to TCP port 6881 (any peer): an
	// 8 bit/s class lets a SYN out about once a minute.
	run(t, ctx, "tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10")
	run(t, ctx, "tc", "-n", ns, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "1gbit")
	run(t, ctx, "tc", "-n", ns, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "8bit", "ceil", "8bit")
	run(t, ctx, "tc", "-n", ns, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
		"u32", "match", "ip", "protocol", "6", "0xff", "match", "ip", "dport", "6881", "0xffff", "flowid", "1:20")
	r := il.fetchAll(t, ctx, []string{ns}, []string{"52:54:00:3e:00:01"}, "--webseed-after", "3s")[0]
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.fromSeed < il.size || r.size != il.size {
		t.Fatalf("node got %d of %d bytes from the web seed, want all", r.fromSeed, il.size)
	}
	metrics, err := curl(ctx, il.l, "http://"+lab.ApplianceAddr+":8080/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if web := metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="http"}`); web < float64(il.size) {
		t.Fatalf("appliance counted %.0f web seed bytes, want at least the image (%d)", web, il.size)
	}
	t.Logf("web seed only: %d bytes in %.1fs", r.fromSeed, r.seconds)
}
