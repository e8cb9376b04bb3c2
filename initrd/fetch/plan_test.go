package fetch

import (
	"net"
	"testing"

	"github.com/anacrolix/torrent"
	"github.com/google/go-cmp/cmp"
)

func TestStartPlan(t *testing.T) {
	const (
		N  = torrent.PiecePriorityNormal
		H  = torrent.PiecePriorityHigh
		Nx = torrent.PiecePriorityNext
		Nw = torrent.PiecePriorityNow
	)
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		mac  net.HardwareAddr
		n    int
		want []torrent.PiecePriority
	}{
		{"ends in 0: 0, then 4, then the even regions", mac("52:54:00:be:00:00"), 8, []torrent.PiecePriority{Nw, N, H, N, Nx, N, H, N}},
		{"ends in 1: the odd regions", mac("52:54:00:be:00:01"), 8, []torrent.PiecePriority{N, Nw, N, H, N, Nx, N, H}},
		{"ends in 2", mac("52:54:00:be:00:02"), 8, []torrent.PiecePriority{H, N, Nw, N, H, N, Nx, N}},
		{"ends in 7", mac("52:54:00:be:00:07"), 8, []torrent.PiecePriority{N, H, N, Nx, N, H, N, Nw}},
		{"only the low three bits count", mac("52:54:00:be:00:f9"), 8, []torrent.PiecePriority{N, Nw, N, H, N, Nx, N, H}},
		{"regions of two pieces", mac("52:54:00:be:00:03"), 16, []torrent.PiecePriority{N, N, H, H, N, N, Nw, Nw, N, N, H, H, N, N, Nx, Nx}},
		{"fewer pieces than regions: regions 0, 2, 5", mac("52:54:00:be:00:01"), 3, []torrent.PiecePriority{N, N, Nx}},
		{"no MAC: as if it ended in 0", nil, 8, []torrent.PiecePriority{Nw, N, H, N, Nx, N, H, N}},
		{"no pieces", mac("52:54:00:be:00:00"), 0, []torrent.PiecePriority{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, startPlan(tc.mac, tc.n)); diff != "" {
				t.Errorf("startPlan(%v, %d) (-want +got):\n%s", tc.mac, tc.n, diff)
			}
		})
	}
}

// Nodes with consecutive MACs prefer disjoint regions: for 2, 4 and 8
// nodes, no region is among the first 1/N of two nodes' preferences.
func TestStartPlanDisjoint(t *testing.T) {
	for _, nodes := range []int{2, 4, 8} {
		owner := map[int]int{}
		for k := range nodes {
			plan := startPlan(net.HardwareAddr{0x52, 0x54, 0, 0xbe, 0, byte(k)}, planRegions)
			// A node's top 8/N regions are those at the levels a node of
			// log2(N) low bits distinguishes.
			minLevel := map[int]torrent.PiecePriority{2: torrent.PiecePriorityHigh, 4: torrent.PiecePriorityNext, 8: torrent.PiecePriorityNow}[nodes]
			for r, p := range plan {
				if p < minLevel {
					continue
				}
				if o, ok := owner[r]; ok {
					t.Errorf("%d nodes: region %d preferred by nodes %d and %d", nodes, r, o, k)
				}
				owner[r] = k
			}
		}
		if len(owner) != planRegions {
			t.Errorf("%d nodes: %d of %d regions preferred by some node", nodes, len(owner), planRegions)
		}
	}
}
