package main

// The rack section: N node clients fetch an image from the appliance in the
// rack lab, by BitTorrent and by plain HTTP, against the physical bound.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"moobi/lab"
)

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

// nodeRun is one node's part of a rack run.
type nodeRun struct {
	seconds   float64 // from the common start until verified
	fromPeers int64
	fromApp   int64
	fromSeed  int64
	firstByte float64 // seconds from its boot config to its first image byte
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
	nodeUser    float64 // the user part of nodeCPU
	// fbP50, fbMax: the median and largest node's time from its boot
	// config to its first image byte (moobi only).
	fbP50, fbMax float64
	bound        float64
	err          error
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
				var secs, fb float64
				var app int64
				_, err := fmt.Sscanf(line, "size %d reused %d from_peers %d from_appliance %d from_webseed %d seconds %f first_byte %f", &sz, &reused, &peers, &app, &seed, &secs, &fb)
				if err != nil {
					// A moobi from before first_byte.
					_, err = fmt.Sscanf(line, "size %d reused %d from_peers %d from_appliance %d from_webseed %d seconds %f", &sz, &reused, &peers, &app, &seed, &secs)
				}
				if err != nil {
					// A moobi from before from_appliance.
					_, err = fmt.Sscanf(line, "size %d reused %d from_peers %d from_webseed %d seconds %f", &sz, &reused, &peers, &seed, &secs)
				}
				if err == nil || strings.HasPrefix(line, "verified-bytes ") {
					if method == "http" {
						fmt.Sscanf(line, "verified-bytes %d", &sz)
					}
					nodes[i] = nodeRun{seconds: time.Since(start).Seconds(), fromPeers: peers, fromApp: app, fromSeed: seed, firstByte: fb}
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
		if cmd.ProcessState != nil {
			run.nodeUser += cmd.ProcessState.UserTime().Seconds() / float64(n)
		}
	}
	var secs, fbs []float64
	for i, nd := range nodes {
		secs = append(secs, nd.seconds)
		fbs = append(fbs, nd.firstByte)
		run.fromPeers += nd.fromPeers
		if method != "http" {
			// Where each node's bytes came from, to tell a slow node's cause.
			fmt.Printf("bench: rack: %s of %d: verified at %.1f s, first byte %.3f s after its boot config, from peers %.2f, from the appliance %.2f, from the web seed %.2f (× S)\n",
				r.nss[i], n, nd.seconds, nd.firstByte, float64(nd.fromPeers)/float64(size), float64(nd.fromApp)/float64(size), float64(nd.fromSeed)/float64(size))
		}
	}
	slices.Sort(secs)
	run.p50, run.p99 = percentile(secs, 50), percentile(secs, 99)
	slices.Sort(fbs)
	run.fbP50, run.fbMax = percentile(fbs, 50), fbs[len(fbs)-1]
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
	p("each node's link is shaped to %s both ways, the appliance's upload to the rate of the profile. Time is from the common start until the node's image verified (its last piece checked against its signed SHA-256); ", rf.nodeRate)
	p("**HTTP** is the same nodes downloading the same file from the appliance's HTTP server and checking its sha256 as it streams (what HTTP-only provisioning does). ")
	p("The bound is max(S/B_node, S/B_appliance, N·S/(B_appliance + N·B_node)). Appliance sent is what its port on the switch sent (all protocols, with TCP/IP headers); node to node is N less that, what the nodes must have sent each other (a little more, as the headers count in the appliance's figure). CPU is the whole machine's busy share during the run (every node and the appliance share this machine's cores; real nodes each have their own); node CPU is the mean CPU time one node's client used, until it was stopped after the last node verified (node CPU s/GiB: the same per GiB of image); first byte is the time from a node's signed boot config to the first byte of the image it received (the median and the largest node); the CPU floor is N × node CPU ÷ this machine's cores, the least time the N clients could take here however good the network.\n\n")
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
				fullsBefore, fullsErr := neighTableFulls()
				run, err := r.fetchRack(ctx, b.self, method, n, size, images, sums, timeout)
				if err != nil {
					return x, fmt.Errorf("%s, %d nodes, appliance %s: %w", method, n, rate, err)
				}
				if fullsAfter, err := neighTableFulls(); fullsErr == nil && err == nil && fullsAfter > fullsBefore {
					fmt.Printf("bench: rack appliance %s %s N=%d: WARNING: the host's neighbour table overflowed %d times during this run: connections between nodes failed, so it measures the lab\n",
						rate, method, n, fullsAfter-fullsBefore)
				}
				run.bound = bound
				runs = append(runs, run)
				fmt.Printf("bench: rack appliance %-8s %-5s N=%-3d all %.1f s (bound %.1f s, %.2f×) p50 %.1f p99 %.1f; first byte p50 %.3f max %.3f s; appliance sent %.2f× S; CPU %.0f%%, %.2f s per node (user %.2f), %.2f s per GiB (load %s)\n",
					rate, method, n, run.all, bound, run.all/bound, run.p50, run.p99, run.fbP50, run.fbMax, float64(run.applianceTx)/float64(size), run.cpuBusy*100, run.nodeCPU, run.nodeUser, perGiB(run.nodeCPU, size), load)
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
		p("| N | bound s | moobi all s | node p50 s | node p99 s | moobi ÷ bound | first byte p50 / max s | appliance sent (× S) | node to node (× S) | CPU | node CPU s | node CPU s/GiB | CPU floor s | HTTP all s | HTTP ÷ bound | HTTP appliance sent (× S) |\n")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, n := range rf.nodes {
			m, _ := byN("moobi", n)
			h, ok := byN("http", n)
			hAll, hRatio, hTx := "–", "–", "–"
			if ok {
				hAll, hRatio, hTx = fmt.Sprintf("%.1f", h.all), fmt.Sprintf("%.2f×", h.all/h.bound), fmt.Sprintf("%.2f", float64(h.applianceTx)/float64(size))
			}
			p("| %d | %.1f | %.1f | %.1f | %.1f | %.2f× | %.2f / %.2f | %.2f | %.2f | %.0f%% | %.1f | %.1f | %.1f | %s | %s | %s |\n", n, m.bound, m.all, m.p50, m.p99, m.all/m.bound,
				m.fbP50, m.fbMax, float64(m.applianceTx)/float64(size), max(0, float64(n)-float64(m.applianceTx)/float64(size)), m.cpuBusy*100, m.nodeCPU, perGiB(m.nodeCPU, size),
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

// perGiB scales seconds spent on an image of size bytes to a GiB image.
func perGiB(seconds float64, size int64) float64 {
	return seconds * (1 << 30) / float64(max(size, 1))
}

func size2(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return size(n)
}
