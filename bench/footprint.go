package main

// The footprint section: the appliance's memory and CPU time while it seeds
// several images to a rack.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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
