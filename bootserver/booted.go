package bootserver

import (
	"net/netip"

	"moobi/images/tracker"
	"moobi/nodes"
)

// restSeeders is the seeder's Seeders: the peers holding the whole torrent
// at addresses that booted (tracker.Swarm.BootedSeeders). The appliance
// pauses its own upload of a version while enough peers hold every piece
// (appliance.seed_rest_copies); counting every announce with left=0, one
// request from any host on the boot network would make it stop serving.
func restSeeders(track *tracker.Tracker) func(ih [20]byte) int {
	return func(ih [20]byte) int { return track.Swarm(ih).BootedSeeders }
}

// bootedAt is the tracker's Options.Booted: the host at addr booted from
// the appliance if a node the registry holds there reported a state its
// initramfs reaches only after it verified a signed boot config (fetching,
// verified, running, degraded; see nodes.Registry.BootedAt). Only the
// node's authenticated events set those states and their address.
func bootedAt(reg *nodes.Registry) func(netip.Addr) bool {
	return func(addr netip.Addr) bool {
		return reg.BootedAt(addr.Unmap().String())
	}
}

// onNetworks reports whether an address is in one of nets (the boot
// interface's networks) or loopback: the tracker and TFTP answer only
// those.
func onNetworks(nets []netip.Prefix) func(netip.Addr) bool {
	return func(a netip.Addr) bool {
		if a.IsLoopback() {
			return true
		}
		for _, n := range nets {
			if n.Contains(a) {
				return true
			}
		}
		return false
	}
}
