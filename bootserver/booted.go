package bootserver

import (
	"net"
	"net/netip"

	"moobi/nodeapi"
	"moobi/nodes"
)

// bootedAt is the tracker's Options.Booted: the host at addr booted from
// the appliance if the node the registry last saw there reported a state
// its initramfs reaches only after it verified a signed boot config
// (fetching, verified, running, degraded).
func bootedAt(reg *nodes.Registry) func(netip.Addr) bool {
	return func(addr netip.Addr) bool {
		mac, _, ok := reg.ByAddress(addr.Unmap().String())
		if !ok {
			return false
		}
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return false
		}
		switch reg.State(hw) {
		case nodeapi.StateFetching, nodeapi.StateVerified, nodeapi.StateRunning, nodeapi.StateDegraded:
			return true
		}
		return false
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
