package main

// The host's neighbour (ARP) table is one table for every network
// namespace, capped by net.ipv4.neigh.default.gc_thresh3 (1024 by
// default). In a rack of N node namespaces that talk to each other each
// namespace holds an entry per peer, about N² in all (10,099 for 100
// nodes); past the cap the kernel refuses new neighbours ("neighbor table
// overflow"), connections between nodes fail, and the run measures the lab
// rather than moobi. The rack lab raises the thresholds to fit and puts
// them back when it closes, and each run says whether the table overflowed.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

const neighSysctl = "/proc/sys/net/ipv4/neigh/default/"

// raiseNeighTable raises gc_thresh2 and gc_thresh3 to fit hosts namespaces
// talking to each other (never lowering them) and returns a function that
// restores the values it changed.
func raiseNeighTable(hosts int) (restore func(), err error) {
	need := (hosts + 1) * (hosts + 1)
	want := map[string]int{"gc_thresh2": 2 * need, "gc_thresh3": 4 * need}
	old := map[string]int{}
	restore = func() {
		// gc_thresh2 first when lowering, for the same reason.
		for _, name := range []string{"gc_thresh2", "gc_thresh3"} {
			if v, ok := old[name]; ok {
				os.WriteFile(neighSysctl+name, []byte(strconv.Itoa(v)), 0o644)
			}
		}
	}
	// gc_thresh3 first when raising: the kernel wants thresh2 ≤ thresh3.
	for _, name := range []string{"gc_thresh3", "gc_thresh2"} {
		b, err := os.ReadFile(neighSysctl + name)
		if err != nil {
			restore()
			return nil, fmt.Errorf("read the neighbour table's %s: %w", name, err)
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			restore()
			return nil, fmt.Errorf("read the neighbour table's %s: %q: %w", name, b, err)
		}
		if cur >= want[name] {
			continue
		}
		if err := os.WriteFile(neighSysctl+name, []byte(strconv.Itoa(want[name])), 0o644); err != nil {
			restore()
			return nil, fmt.Errorf("raise the neighbour table's %s to %d for %d hosts: %w", name, want[name], hosts, err)
		}
		old[name] = cur
	}
	return restore, nil
}

// neighTableFulls is the host's count of neighbour-table overflows (the
// table_fulls column of /proc/net/stat/arp_cache, summed over CPUs).
func neighTableFulls() (int64, error) {
	b, err := os.ReadFile("/proc/net/stat/arp_cache")
	if err != nil {
		return 0, err
	}
	return parseTableFulls(string(b))
}

func parseTableFulls(s string) (int64, error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "table_fulls" {
			col = i
		}
	}
	if col < 0 {
		return 0, fmt.Errorf("arp_cache statistics: no table_fulls column in %q", lines[0])
	}
	var sum int64
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if col >= len(f) {
			return 0, fmt.Errorf("arp_cache statistics: short line %q", l)
		}
		v, err := strconv.ParseInt(f[col], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("arp_cache statistics: %q: %w", f[col], err)
		}
		sum += v
	}
	return sum, nil
}
