package fetch

import (
	"net"

	"github.com/anacrolix/torrent"
)

// planRegions is how many contiguous regions startPlan splits an image into.
const planRegions = 32

// startPlan returns the priority of each of n pieces for the node with this
// MAC: nodes that start together begin with different regions of the
// image, so that what each asks of the appliance first is what the others
// lack.
//
// anacrolix/torrent (v1.61.0) orders the pieces to request by priority,
// then rarity, then a random order of its own (requesting.go lessByValue).
// Rarity cannot tell a piece another node has already asked the appliance
// for, so nodes that start together would ask it for some of the same
// pieces. Here the region (of planRegions) whose index is the MAC's last
// byte modulo planRegions gets high priority: up to 32 nodes with
// consecutive MACs start from disjoint thirty-seconds of the image. The
// rest is left to rarity: a piece a node's peers hold is one the
// appliance need not send it. Priority outranks rarity, so levels below
// the first region (the node's eighth, its quarter) made nodes ask the
// appliance for pieces their peers already held: in a rack of 32 (128 MiB
// image, appliance at 100 Mbit/s, seeder.RestCopies 1), the appliance sent
// 1.57 times the image before every piece was held by a node with this
// plan, 1.67 with three levels over 32 regions, about 2 with three levels
// over 8 regions. The pieces the appliance's seeder suggests (suggest.go)
// go before the plan's.
func startPlan(mac net.HardwareAddr, n int) []torrent.PiecePriority {
	var k int
	if len(mac) > 0 {
		k = int(mac[len(mac)-1])
	}
	out := make([]torrent.PiecePriority, n)
	for i := range out {
		out[i] = torrent.PiecePriorityNormal
		if i*planRegions/n == k%planRegions {
			out[i] = torrent.PiecePriorityHigh
		}
	}
	return out
}
