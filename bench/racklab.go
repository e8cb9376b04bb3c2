package main

// The rack lab: the appliance's namespace with its bridge, one namespace per
// node, and the links between them shaped with tc.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"moobi/lab"
)

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
	// restoreNeigh puts back the host's neighbour-table thresholds.
	restoreNeigh func()
	// restoreMem puts back the host's free page reporting (holdMemory).
	restoreMem func()
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
	if r.restoreNeigh, err = raiseNeighTable(hosts); err != nil {
		return nil, err
	}
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
	if b.c.rack.holdMemory {
		warm := ""
		if r.mounted {
			warm = r.caches
		}
		var did string
		if r.restoreMem, did, err = holdMemory(reportingOrder, warm, int64(hosts)*int64(sizeMiB)<<20); err != nil {
			return nil, err
		}
		fmt.Printf("bench: %s: %s\n", name, did)
		b.labNotes = append(b.labNotes, name+": "+did)
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
	if r.restoreNeigh != nil {
		r.restoreNeigh()
	}
	if r.restoreMem != nil {
		r.restoreMem()
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
