package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"moobi/lab"
)

// rackFlags configure the rack distribution and footprint sections.
type rackFlags struct {
	nodes          []int
	imageMiB       int
	nodeRate       string
	applianceRates []string
	httpMax        int
	tmpfs          bool
	kernelCache    string
	restCopies     int // appliance.seed_rest_copies; < 0: the appliance's default

	footImages   int
	footPeers    int
	footImageMiB int
	footRate     string
}

func registerRackFlags(fs *flag.FlagSet) *rackFlags {
	r := &rackFlags{nodes: []int{1, 2, 4, 8, 16, 32}, applianceRates: []string{"100mbit", "1gbit"}}
	fs.Func("rack-nodes", "rack: numbers of nodes booting at once (default 1,2,4,8,16,32)", func(s string) error {
		ns, err := parseInts(s)
		r.nodes = ns
		return err
	})
	fs.IntVar(&r.imageMiB, "rack-image-mib", 256, "rack: size S of the image, MiB")
	fs.StringVar(&r.nodeRate, "rack-node-rate", "100mbit", "rack: each node's link, both ways (tc rate)")
	fs.Func("rack-appliance-rates", "rack: the appliance's upload link, one profile each (default 100mbit,1gbit)", func(s string) error {
		r.applianceRates = nil
		for _, f := range strings.Split(s, ",") {
			if _, err := parseRate(f); err != nil {
				return err
			}
			r.applianceRates = append(r.applianceRates, strings.TrimSpace(f))
		}
		return nil
	})
	fs.IntVar(&r.httpMax, "rack-http-max", 32, "rack: largest rack also timed fetching the image over plain HTTP")
	fs.IntVar(&r.restCopies, "rack-seed-rest-copies", -1, "rack, footprint: the appliance's seed_rest_copies (0: the seeder never rests; -1: the appliance's default)")
	fs.BoolVar(&r.tmpfs, "rack-tmpfs", true, "rack, footprint: keep the nodes' caches in a tmpfs (each real node has its own disk; one shared disk here would be the bottleneck)")
	fs.StringVar(&r.kernelCache, "kernel-cache", "", "folder caching the Debian kernel that images are published with (default $MOOBI_CACHE or .cache/lab)")
	fs.IntVar(&r.footImages, "footprint-images", 3, "footprint: images seeded at once")
	fs.IntVar(&r.footPeers, "footprint-peers", 32, "footprint: nodes fetching them (spread over the images)")
	fs.IntVar(&r.footImageMiB, "footprint-image-mib", 64, "footprint: size of each image, MiB")
	fs.StringVar(&r.footRate, "footprint-appliance-rate", "1gbit", "footprint: the appliance's upload link (nodes get --rack-node-rate)")
	return r
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive numbers like 1,2,4", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseRate reads a tc rate ("100mbit", "1gbit", "500kbit"; tc's units are
// powers of ten) as bits per second.
func parseRate(s string) (float64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v <= 0 {
				break
			}
			return v * u.mult, nil
		}
	}
	return 0, fmt.Errorf("rate %q: want a tc rate such as 100mbit or 1gbit", s)
}

// rackBound is the physical bound on the time for n nodes to hold an
// s-byte image: each node must receive s bytes through its own link, the
// appliance must send every byte at least once, and the n·s bytes received
// must all be sent by the appliance or a node:
// max(s/B_node, s/B_appliance, n·s/(B_appliance + n·B_node)). Rates in bits
// per second.
func rackBound(n int, s int64, nodeBits, applianceBits float64) float64 {
	bits := float64(s) * 8
	return max(bits/nodeBits, bits/applianceBits, float64(n)*bits/(applianceBits+float64(n)*nodeBits))
}

// rackLab is a lab whose appliance serves images to node namespaces on
// shaped links.
type rackLab struct {
	l       *lab.Lab
	bin     string
	cfg     string
	pubkey  string
	app     *lab.Appliance
	nss     []string
	macs    []string
	caches  string
	mounted bool
}

const rackMACPrefix = "52:54:00:be:"

// newRackLab makes a lab with hosts n01…nNN on links shaped to nodeRate,
// publishes one image per entry of images (name → size in MiB; host i boots
// images[i mod len]) and starts the appliance.
func (b *runner) newRackLab(ctx context.Context, name string, hosts int, nodeRate string, images []string, sizeMiB, restCopies int) (_ *rackLab, err error) {
	r := &rackLab{bin: b.c.moobi}
	if r.l, err = lab.New(ctx, lab.Options{Dir: filepath.Join(b.s.dir, name)}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	kernelCache := b.c.rack.kernelCache
	if kernelCache == "" {
		if kernelCache = os.Getenv("MOOBI_CACHE"); kernelCache == "" {
			kernelCache = filepath.Join(".cache", "lab")
		}
	}
	kernel, err := lab.Kernel(ctx, kernelCache)
	if err != nil {
		return nil, err
	}
	dir := r.l.Dir()
	r.caches = filepath.Join(dir, "caches")
	if err := os.MkdirAll(r.caches, 0o755); err != nil {
		return nil, err
	}
	if b.c.rack.tmpfs {
		need := int64(hosts)*int64(sizeMiB)<<20 + 256<<20
		if avail := memAvailable(); avail > need+4<<30 {
			if out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", need), "moobi-bench", r.caches).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("mount a tmpfs for the caches: %v: %s", err, out)
			}
			r.mounted = true
		} else {
			fmt.Printf("bench: %s: %d MiB of memory available, the caches need %d MiB and 4 GiB spare: caches on disk\n", name, avail>>20, need>>20)
		}
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "appliance:\n  interface: %s\n  http_port: 8080\n  data_dir: %s/data\n  ipxe_dir: /usr/lib/ipxe\n", lab.BridgeName, dir)
	if restCopies >= 0 {
		fmt.Fprintf(&cfg, "  seed_rest_copies: %d\n", restCopies)
	}
	cfg.WriteString("profiles:\n")
	for _, img := range images {
		fmt.Fprintf(&cfg, "  %s:\n    image: %s\n    cmdline: console=ttyS0\n", img, img)
	}
	cfg.WriteString("hosts:\n")
	for i := range hosts {
		mac := fmt.Sprintf("%s%02x:%02x", rackMACPrefix, i>>8, i&0xff)
		fmt.Fprintf(&cfg, "  n%02d:\n    mac: %s\n    profile: %s\n", i+1, mac, images[i%len(images)])
		r.macs = append(r.macs, mac)
	}
	r.cfg = filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(r.cfg, []byte(cfg.String()), 0o644); err != nil {
		return nil, err
	}
	for _, img := range images {
		rootfs, err := lab.RandomSquashfs(ctx, filepath.Join(dir, "src-"+img), sizeMiB)
		if err != nil {
			return nil, err
		}
		out, err := exec.CommandContext(ctx, r.bin, "image", "add", "--config", r.cfg, "--name", img, "--kernel", kernel, "--rootfs", rootfs).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("moobi image add %s: %v\n%s", img, err, out)
		}
		os.Remove(rootfs)
	}
	for i := range hosts {
		ns, err := r.l.AddHost(ctx, fmt.Sprintf("n%d", i+1))
		if err != nil {
			return nil, err
		}
		if err := ipCmd(ctx, "-n", ns, "addr", "add", fmt.Sprintf("10.99.0.%d/24", 10+i), "dev", "eth0"); err != nil {
			return nil, err
		}
		// Up through the node's own port, down through its port on the
		// switch (the bridge's port in the appliance namespace).
		if err := shapeLink(ctx, ns, "eth0", nodeRate); err != nil {
			return nil, err
		}
		if err := shapeLink(ctx, r.l.ApplianceNS(), fmt.Sprintf("host%d", i+1), nodeRate); err != nil {
			return nil, err
		}
		r.nss = append(r.nss, ns)
	}
	r.pubkey = filepath.Join(dir, "data", "state", "boot-signing.pub")
	return r, nil
}

// shapeLink limits what dev sends to rate with a token bucket.
func shapeLink(ctx context.Context, ns, dev, rate string) error {
	bits, err := parseRate(rate)
	if err != nil {
		return err
	}
	burst := max(256<<10, int64(bits/8/100)) // at least 10 ms of traffic
	out, err := exec.CommandContext(ctx, "tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", rate, "burst", strconv.FormatInt(burst, 10), "latency", "100ms").CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc qdisc replace dev %s in %s: %v: %s", dev, ns, err, out)
	}
	return nil
}

func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// restart (re)starts the appliance with its upload link shaped to rate and
// waits until it seeds every image.
func (r *rackLab) restart(ctx context.Context, rate string, images int) error {
	if r.app != nil {
		if err := r.app.Stop(); err != nil {
			return err
		}
		r.app = nil
	}
	// The appliance's own port on the switch is the bridge device: what it
	// sends goes through br0's queue, what nodes send each other does not.
	if err := shapeLink(ctx, r.l.ApplianceNS(), lab.BridgeName, rate); err != nil {
		return err
	}
	started := time.Now()
	app, err := r.l.StartAppliance(ctx, r.bin, r.cfg)
	if err != nil {
		return err
	}
	r.app = app
	seeding := map[string]bool{}
	return app.WaitLog(ctx, 2*time.Minute, func(e lab.LogEntry) bool {
		if e.Msg == "seeding" && !e.Time.Before(started) {
			seeding[e.Image] = true
		}
		return len(seeding) >= images
	})
}

func (r *rackLab) Close() {
	if r.app != nil {
		r.app.Stop()
	}
	if r.l != nil {
		r.l.Close()
	}
	if r.mounted {
		exec.Command("umount", "-l", r.caches).Run()
	}
}

// txBytes is what dev in ns has sent.
func txBytes(ctx context.Context, ns, dev string) (int64, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev).Output()
	if err != nil {
		return 0, fmt.Errorf("ip -s link show %s: %w", dev, err)
	}
	var links []struct {
		Stats struct {
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -s -j link show %s: %q: %v", dev, out, err)
	}
	return links[0].Stats.TX.Bytes, nil
}

// busyMeter measures the machine's busy share of its CPUs over an
// interval: one minus the idle time /proc/stat reports (idle and iowait)
// over the wall-clock time of all CPUs. The kernel accounts idle time
// exactly (at each idle entry and exit) and busy time by sampling at
// ticks, which misses most of a load that wakes a thousand times a second
// for a few microseconds; so the busy share is taken from the idle time.
type busyMeter struct {
	start time.Time
	idle  float64
}

func startBusyMeter() busyMeter { return busyMeter{time.Now(), idleSeconds()} }

// share is the busy share since start, from 0 to 1.
func (m busyMeter) share() float64 {
	wall := time.Since(m.start).Seconds() * float64(runtime.NumCPU())
	if wall <= 0 {
		return 0
	}
	return min(1, max(0, 1-(idleSeconds()-m.idle)/wall))
}

// idleSeconds is the machine's idle and iowait time (/proc/stat).
func idleSeconds() float64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks int64
	for _, i := range []int{4, 5} { // cpu user nice system idle iowait
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return float64(ticks) / 100 // USER_HZ
}

// nodeRun is one node's part of a rack run.
type nodeRun struct {
	seconds   float64 // from the common start until verified
	fromPeers int64
	fromApp   int64
	fromSeed  int64
}

// rackRun is n nodes fetching at once, by BitTorrent or HTTP.
type rackRun struct {
	method      string // moobi, http
	n           int
	all         float64 // seconds until every node verified
	p50, p99    float64
	applianceTx int64 // bytes the appliance's port sent
	fromPeers   int64
	cpuBusy     float64 // of the machine, 0..1
	nodeCPU     float64 // mean CPU seconds (user+system) of one node's client
	bound       float64
	err         error
}

// fetchRack starts one client per node (the first n) at once and waits
// until every one has a verified image; the appliance must be running.
func (r *rackLab) fetchRack(ctx context.Context, self, method string, n int, size int64, images []string, sums map[string]string, timeout time.Duration) (rackRun, error) {
	run := rackRun{method: method, n: n}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, ns := range r.nss[:n] {
		os.RemoveAll(filepath.Join(r.caches, ns))
	}
	tx0, err := txBytes(ctx, r.l.ApplianceNS(), lab.BridgeName)
	if err != nil {
		return run, err
	}
	busy := startBusyMeter()
	nodes := make([]nodeRun, n)
	errs := make([]error, n)
	cmds := make([]*exec.Cmd, n)
	var wg sync.WaitGroup
	var verified sync.WaitGroup
	verified.Add(n)
	allDone := make(chan struct{})
	start := time.Now()
	for i := range n {
		ns := r.nss[i]
		dir := filepath.Join(r.caches, ns)
		image := images[i%len(images)]
		var cmd *exec.Cmd
		if method == "http" {
			url := "http://" + lab.ApplianceAddr + ":8080/images/" + image + "/current/rootfs"
			cmd = lab.NetnsCommand(ctx, ns, self, "http-fetch", "--url", url, "--out", filepath.Join(dir, "rootfs"), "--sha256", sums[image])
		} else {
			cmd = lab.NetnsCommand(ctx, ns, r.bin, "node", "fetch", "--server", "http://"+lab.ApplianceAddr+":8080",
				"--mac", r.macs[i], "--dir", dir, "--seed-for", "24h", "--pubkey", r.pubkey, "--log-level", "warn")
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmds[i] = cmd
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			cancel()
			return run, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			counted := false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				var sz, reused, peers, seed int64
				var secs float64
				var app int64
				_, err := fmt.Sscanf(line, "size %d reused %d from_peers %d from_appliance %d from_webseed %d seconds %f", &sz, &reused, &peers, &app, &seed, &secs)
				if err != nil {
					// A moobi from before from_appliance.
					_, err = fmt.Sscanf(line, "size %d reused %d from_peers %d from_webseed %d seconds %f", &sz, &reused, &peers, &seed, &secs)
				}
				if err == nil || strings.HasPrefix(line, "verified-bytes ") {
					if method == "http" {
						fmt.Sscanf(line, "verified-bytes %d", &sz)
					}
					nodes[i] = nodeRun{seconds: time.Since(start).Seconds(), fromPeers: peers, fromApp: app, fromSeed: seed}
					if sz != size {
						errs[i] = fmt.Errorf("%s verified %d bytes, the image has %d", ns, sz, size)
					}
					counted = true
					verified.Done()
					go func() { <-allDone; cmd.Process.Signal(os.Interrupt) }()
				}
			}
			err := cmd.Wait()
			if !counted {
				errs[i] = fmt.Errorf("%s: %s client ended without a verified image: %v\n%s", ns, method, err, tail(stderr.String(), 10))
				verified.Done()
			}
		}()
	}
	verified.Wait()
	run.all = time.Since(start).Seconds()
	run.cpuBusy = busy.share()
	close(allDone)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return run, err
	}
	tx1, err := txBytes(context.Background(), r.l.ApplianceNS(), lab.BridgeName)
	if err != nil {
		return run, err
	}
	run.applianceTx = tx1 - tx0
	for _, cmd := range cmds {
		// `ip netns exec` execs the client in place: this is its usage.
		run.nodeCPU += exitedCPU(cmd.ProcessState) / float64(n)
	}
	var secs []float64
	for i, nd := range nodes {
		secs = append(secs, nd.seconds)
		run.fromPeers += nd.fromPeers
		if method != "http" {
			// Where each node's bytes came from, to tell a slow node's cause.
			fmt.Printf("bench: rack: %s of %d: verified at %.1f s, from peers %.2f, from the appliance %.2f, from the web seed %.2f (× S)\n",
				r.nss[i], n, nd.seconds, float64(nd.fromPeers)/float64(size), float64(nd.fromApp)/float64(size), float64(nd.fromSeed)/float64(size))
		}
	}
	slices.Sort(secs)
	run.p50, run.p99 = percentile(secs, 50), percentile(secs, 99)
	return run, nil
}

// imageSums reads each image's rootfs sha256 from the appliance.
func (r *rackLab) imageSums(ctx context.Context, images []string) (map[string]string, error) {
	sums := map[string]string{}
	for _, img := range images {
		b, err := os.ReadFile(filepath.Join(r.l.Dir(), "data", "images", img, "current", "manifest.json"))
		if err != nil {
			return nil, fmt.Errorf("manifest of %s: %w", img, err)
		}
		var m struct {
			Files map[string]struct {
				SHA256 string `json:"sha256"`
			} `json:"files"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.Files["rootfs"].SHA256 == "" {
			return nil, fmt.Errorf("manifest of %s: no rootfs sha256 (%v)", img, err)
		}
		sums[img] = m.Files["rootfs"].SHA256
	}
	return sums, nil
}

// rackSection: time until N nodes hold a verified image, by BitTorrent from
// moobi and by plain HTTP from the same appliance, against the bound, for
// each appliance link profile.
func (b *runner) rackSection(ctx context.Context) (extraSection, error) {
	rf := b.c.rack
	nodeBits, err := parseRate(rf.nodeRate)
	if err != nil {
		return extraSection{}, err
	}
	hosts := slices.Max(rf.nodes)
	images := []string{"rack"}
	r, err := b.newRackLab(ctx, "rack", hosts, rf.nodeRate, images, rf.imageMiB, rf.restCopies)
	if err != nil {
		return extraSection{}, err
	}
	defer r.Close()
	sums, err := r.imageSums(ctx, images)
	if err != nil {
		return extraSection{}, err
	}
	st, err := os.Stat(filepath.Join(r.l.Dir(), "data", "images", "rack", "current", "rootfs"))
	if err != nil {
		return extraSection{}, err
	}
	size := st.Size()
	var x extraSection
	var md strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&md, format, args...) }
	p("## Rack distribution (%s image, nodes on %s links)\n\n", size2(size), rf.nodeRate)
	p("N nodes (network namespaces, each running `moobi node fetch`, the node client of the initramfs) fetch one %s squashfs image at once; ", size2(size))
	p("each node's link is shaped to %s both ways, the appliance's upload to the rate of the profile. Time is from the common start until the node's image verified (its last piece hashed and the whole file's sha256 checked); ", rf.nodeRate)
	p("**HTTP** is the same nodes downloading the same file from the appliance's HTTP server and checking its sha256 as it streams (what HTTP-only provisioning does). ")
	p("The bound is max(S/B_node, S/B_appliance, N·S/(B_appliance + N·B_node)). Appliance sent is what its port on the switch sent (all protocols, with TCP/IP headers); node to node is N less that, what the nodes must have sent each other (a little more, as the headers count in the appliance's figure). CPU is the whole machine's busy share during the run (every node and the appliance share this machine's cores; real nodes each have their own); node CPU is the mean CPU time one node's client used, until it was stopped after the last node verified; the CPU floor is N × node CPU ÷ this machine's cores, the least time the N clients could take here however good the network.\n\n")
	for _, rate := range rf.applianceRates {
		appBits, _ := parseRate(rate)
		var runs []rackRun
		for _, n := range rf.nodes {
			for _, method := range []string{"moobi", "http"} {
				if method == "http" && n > rf.httpMax {
					continue
				}
				if err := ctx.Err(); err != nil {
					return x, err
				}
				if err := r.restart(ctx, rate, len(images)); err != nil {
					return x, fmt.Errorf("appliance: %w", err)
				}
				bound := rackBound(n, size, nodeBits, appBits)
				timeout := time.Duration(bound*10)*time.Second + 3*time.Minute
				if method == "http" {
					timeout += time.Duration(float64(n)*float64(size)*8/appBits*3) * time.Second
				}
				load := strings.Fields(loadAvg())[0]
				run, err := r.fetchRack(ctx, b.self, method, n, size, images, sums, timeout)
				if err != nil {
					return x, fmt.Errorf("%s, %d nodes, appliance %s: %w", method, n, rate, err)
				}
				run.bound = bound
				runs = append(runs, run)
				fmt.Printf("bench: rack appliance %-8s %-5s N=%-3d all %.1f s (bound %.1f s, %.2f×) p50 %.1f p99 %.1f; appliance sent %.2f× S; CPU %.0f%%, %.1f s per node (load %s)\n",
					rate, method, n, run.all, bound, run.all/bound, run.p50, run.p99, float64(run.applianceTx)/float64(size), run.cpuBusy*100, run.nodeCPU, load)
			}
		}
		byN := func(method string, n int) (rackRun, bool) {
			for _, r := range runs {
				if r.method == method && r.n == n {
					return r, true
				}
			}
			return rackRun{}, false
		}
		p("### Appliance upload %s\n\n", rate)
		p("| N | bound s | moobi all s | node p50 s | node p99 s | moobi ÷ bound | appliance sent (× S) | node to node (× S) | CPU | node CPU s | CPU floor s | HTTP all s | HTTP ÷ bound | HTTP appliance sent (× S) |\n")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, n := range rf.nodes {
			m, _ := byN("moobi", n)
			h, ok := byN("http", n)
			hAll, hRatio, hTx := "–", "–", "–"
			if ok {
				hAll, hRatio, hTx = fmt.Sprintf("%.1f", h.all), fmt.Sprintf("%.2f×", h.all/h.bound), fmt.Sprintf("%.2f", float64(h.applianceTx)/float64(size))
			}
			p("| %d | %.1f | %.1f | %.1f | %.1f | %.2f× | %.2f | %.2f | %.0f%% | %.1f | %.1f | %s | %s | %s |\n", n, m.bound, m.all, m.p50, m.p99, m.all/m.bound,
				float64(m.applianceTx)/float64(size), max(0, float64(n)-float64(m.applianceTx)/float64(size)), m.cpuBusy*100, m.nodeCPU,
				cpuFloor(n, m.nodeCPU, runtime.NumCPU()), hAll, hRatio, hTx)
			x.targets = append(x.targets, target{
				what:  fmt.Sprintf("rack of %d, appliance %s: all verified within 1.5× the bound", n, rate),
				moobi: fmt.Sprintf("%.1f s", m.all), ref: fmt.Sprintf("%.1f s (bound)", m.bound),
				ratio: fmt.Sprintf("%.2f×", m.all/m.bound), pass: m.all <= 1.5*m.bound, section: "rack",
			})
			if n == slices.Max(rf.nodes) && n >= 32 {
				up := float64(m.applianceTx) / float64(size)
				x.targets = append(x.targets, target{
					what:  fmt.Sprintf("rack of %d, appliance %s: appliance uploads at most 1.5× S", n, rate),
					moobi: fmt.Sprintf("%.2f× S", up), ref: "1.5× S", pass: up <= 1.5, section: "rack",
				})
			}
		}
		p("\n")
		svg := rackPlot(fmt.Sprintf("%s image, nodes %s, appliance %s", size2(size), rf.nodeRate, rate), runs)
		name := "rack-" + rate + ".svg"
		if err := os.WriteFile(filepath.Join(filepath.Dir(b.c.out), name), []byte(svg), 0o644); err != nil {
			return x, err
		}
		p("![time until all N nodes verified, moobi vs HTTP vs the bound, appliance %s](%s)\n\n", rate, name)
	}
	x.markdown = md.String()
	return x, nil
}

// cpuFloor is the least time n node clients needing cpu seconds each can
// take on this machine's cores: where it exceeds the bound, the machine
// running every node is the limit, not the network.
func cpuFloor(n int, cpu float64, cores int) float64 {
	return float64(n) * cpu / float64(max(cores, 1))
}

func size2(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return size(n)
}

// footprintSection: the appliance's memory and CPU while it seeds several
// images to a rack of peers at once.
func (b *runner) footprintSection(ctx context.Context) (extraSection, error) {
	rf := b.c.rack
	var images []string
	for i := range rf.footImages {
		images = append(images, fmt.Sprintf("img%d", i+1))
	}
	r, err := b.newRackLab(ctx, "footprint", rf.footPeers, rf.nodeRate, images, rf.footImageMiB, rf.restCopies)
	if err != nil {
		return extraSection{}, err
	}
	defer r.Close()
	sums, err := r.imageSums(ctx, images)
	if err != nil {
		return extraSection{}, err
	}
	st, err := os.Stat(filepath.Join(r.l.Dir(), "data", "images", images[0], "current", "rootfs"))
	if err != nil {
		return extraSection{}, err
	}
	if err := r.restart(ctx, rf.footRate, len(images)); err != nil {
		return extraSection{}, err
	}
	pid := r.app.Pid()
	rss0, _ := procMemory(pid)
	cpu0 := procCPU(pid)
	var peak int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _ := procMemory(pid); rss > peak {
				peak = rss
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	run, err := r.fetchRack(ctx, b.self, "moobi", rf.footPeers, st.Size(), images, sums, 20*time.Minute)
	wall := time.Since(start).Seconds()
	close(stop)
	<-sampled
	if err != nil {
		return extraSection{}, err
	}
	cpu := procCPU(pid) - cpu0
	_, hwm := procMemory(pid)
	rssEnd, _ := procMemory(pid)
	fmt.Printf("bench: footprint %d images to %d peers in %.1f s: RSS peak %.1f MiB (VmHWM %.1f MiB), CPU %.1f s (%.0f%% of one core)\n",
		len(images), rf.footPeers, wall, float64(peak)/(1<<20), float64(hwm)/(1<<20), cpu, cpu/wall*100)
	var md strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&md, format, args...) }
	p("## Footprint (the appliance seeding %d images to %d peers)\n\n", len(images), rf.footPeers)
	p("`moobi serve` seeds %d images of %s; %d node clients (`moobi node fetch`, hosts spread over the images, links %s, the appliance's upload %s) fetch them at once. ", len(images), size2(st.Size()), rf.footPeers, rf.nodeRate, rf.footRate)
	p("RSS is sampled every 200 ms from /proc/PID/status (VmRSS; VmHWM is the kernel's high-water mark); CPU is utime+stime of the process over the run.\n\n")
	p("| | |\n|---|---|\n")
	p("| all peers verified | %.1f s |\n", wall)
	p("| RSS before / peak / after | %.1f / %.1f / %.1f MiB |\n", float64(rss0)/(1<<20), float64(peak)/(1<<20), float64(rssEnd)/(1<<20))
	p("| VmHWM (since start) | %.1f MiB |\n", float64(hwm)/(1<<20))
	p("| CPU | %.1f s, %.0f%% of one core on average |\n", cpu, cpu/wall*100)
	p("| appliance sent | %.2f × one image (%s bytes) |\n", float64(run.applianceTx)/float64(st.Size()), thousands(int(run.applianceTx)))
	p("| machine CPU busy | %.0f%% |\n\n", run.cpuBusy*100)
	x := extraSection{markdown: md.String()}
	top := max(peak, hwm)
	x.targets = append(x.targets, target{
		what:  fmt.Sprintf("appliance RSS at most 150 MiB seeding %d images to %d peers", len(images), rf.footPeers),
		moobi: fmt.Sprintf("%.1f MiB", float64(top)/(1<<20)), ref: "150 MiB", pass: top <= 150<<20, section: "footprint",
	})
	return x, nil
}

// procMemory is a process's VmRSS and VmHWM in bytes.
func procMemory(pid int) (rss, hwm int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// groupCPU is the user+system CPU time in seconds of the live processes
// of process group pgid (a server and the workers it forked).
func groupCPU(pgid int) float64 {
	ents, _ := os.ReadDir("/proc")
	var sum float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 13 {
			if pg, _ := strconv.Atoi(f[2]); pg == pgid {
				sum += statCPU(f)
			}
		}
	}
	return sum
}

// procStat is the fields of /proc/PID/stat after the command name: state
// is [0], pgrp [2], utime [11], stime [12].
func procStat(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	return strings.Fields(s)
}

// procCPU is a process's user+system CPU time in seconds.
func procCPU(pid int) float64 { return statCPU(procStat(pid)) }

// statCPU is the user+system CPU time in seconds in procStat's fields.
func statCPU(f []string) float64 {
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100 // USER_HZ
}

// exitedCPU is the user+system CPU time in seconds of a process that was
// waited for (nil: none yet).
func exitedCPU(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// httpFetchMain downloads --url to --out, hashing as it writes, and prints
// "verified-bytes N" when the sha256 matches --sha256.
func httpFetchMain(args []string) int {
	fs := flag.NewFlagSet("http-fetch", flag.ContinueOnError)
	url := fs.String("url", "", "what to download")
	out := fs.String("out", "", "where to write it")
	want := fs.String("sha256", "", "expected sha256, hex")
	if err := fs.Parse(args); err != nil || *url == "" || *out == "" || *want == "" {
		fmt.Fprintln(os.Stderr, "usage: bench http-fetch --url URL --out FILE --sha256 HEX")
		return 2
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp, err := http.Get(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "GET %s: %s\n", *url, resp.Status)
		return 1
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "GET %s: after %d bytes: %v\n", *url, n, err)
		return 1
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != *want {
		fmt.Fprintf(os.Stderr, "GET %s: sha256 %s, want %s\n", *url, got, *want)
		return 1
	}
	fmt.Printf("verified-bytes %d\n", n)
	return 0
}
