package fetch

import (
	"net"
	"testing"

	"github.com/anacrolix/torrent"
	"github.com/google/go-cmp/cmp"
)

func TestStartPlan(t *testing.T) {
	const (
		N = torrent.PiecePriorityNormal
		H = torrent.PiecePriorityHigh
	)
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// one returns n pieces, those of region r (of planRegions) high.
	one := func(n, r int) []torrent.PiecePriority {
		out := make([]torrent.PiecePriority, n)
		for i := range out {
			out[i] = N
			if i*planRegions/n == r {
				out[i] = H
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		mac  net.HardwareAddr
		n    int
		want []torrent.PiecePriority
	}{
		{"ends in 0: region 0", mac("52:54:00:be:00:00"), 32, one(32, 0)},
		{"ends in 1: region 1", mac("52:54:00:be:00:01"), 32, one(32, 1)},
		{"ends in 31: the last region", mac("52:54:00:be:00:1f"), 32, one(32, 31)},
		{"only the low five bits count", mac("52:54:00:be:00:e3"), 32, one(32, 3)},
		{"regions of two pieces", mac("52:54:00:be:00:03"), 64, one(64, 3)},
		{"fewer pieces than regions: each piece is in the region it starts in", mac("52:54:00:be:00:0a"), 3, []torrent.PiecePriority{N, H, N}},
		{"fewer pieces than regions: no piece starts in region 5", mac("52:54:00:be:00:05"), 3, []torrent.PiecePriority{N, N, N}},
		{"no MAC: as if it ended in 0", nil, 8, []torrent.PiecePriority{H, N, N, N, N, N, N, N}},
		{"no pieces", mac("52:54:00:be:00:00"), 0, []torrent.PiecePriority{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, startPlan(tc.mac, tc.n)); diff != "" {
				t.Errorf("startPlan(%v, %d) (-want +got):\n%s", tc.mac, tc.n, diff)
			}
		})
	}
}

// Nodes with consecutive MACs start from disjoint regions: for up to 32
// nodes, no piece is high for two of them, and 32 nodes cover the image.
func TestStartPlanDisjoint(t *testing.T) {
	const pieces = 1000
	for _, nodes := range []int{2, 8, 32} {
		owner := map[int]int{}
		for k := range nodes {
			for i, p := range startPlan(net.HardwareAddr{0x52, 0x54, 0, 0xbe, 0, byte(0x40 + k)}, pieces) {
				if p != torrent.PiecePriorityHigh {
					continue
				}
				if o, ok := owner[i]; ok {
					t.Fatalf("%d nodes: piece %d high for nodes %d and %d", nodes, i, o, k)
				}
				owner[i] = k
			}
		}
		if want := pieces * nodes / planRegions; len(owner) < want-nodes || len(owner) > want+nodes {
			t.Errorf("%d nodes: %d of %d pieces high for some node, want about %d", nodes, len(owner), pieces, want)
		}
	}
}
