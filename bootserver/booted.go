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
// (fetching, verified, running).
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
		case nodeapi.StateFetching, nodeapi.StateVerified, nodeapi.StateRunning:
			return true
		}
		return false
	}
}
