package main

// The rack and footprint sections' command-line flags and their parsers.

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// rackFlags configure the rack distribution and footprint sections.
type rackFlags struct {
	nodes          []int
	imageMiB       int
	nodeRate       string
	applianceRates []string
	httpMax        int
	tmpfs          bool
	holdMemory     bool
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
	fs.BoolVar(&r.holdMemory, "rack-hold-memory", false, "rack, footprint: while the lab runs, hold freed memory from the hypervisor's free page reporting and warm the caches' tmpfs once (a real node's RAM is its own; see bench/hostmem.go)")
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
