package bootserver

import (
	"net"
	"net/netip"
	"testing"

	"moobi/nodeapi"
	"moobi/nodes"
)

// A host counts as booted for the tracker once the node at its address
// reported a state its initramfs reaches only after a verified config.
func TestBootedAt(t *testing.T) {
	reg := nodes.New()
	booted := bootedAt(reg)
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 1}
	addr := netip.MustParseAddr("10.99.0.21")
	if booted(addr) {
		t.Fatal("unknown address booted")
	}
	reg.Addressed(mac, "n1", addr)
	for _, tc := range []struct {
		state string
		want  bool
	}{
		{nodeapi.StateKernel, false},
		{nodeapi.StateFetching, true},
		{nodeapi.StateVerified, true},
		{nodeapi.StateRunning, true},
		{nodeapi.StateFailed, false},
	} {
		reg.Report(mac, "n1", nodeapi.Event{State: tc.state, Reason: "r"}, addr.String())
		if got := booted(addr); got != tc.want {
			t.Errorf("node in %s: booted %v, want %v", tc.state, got, tc.want)
		}
		if booted(netip.MustParseAddr("10.99.0.22")) {
			t.Errorf("node in %s: another address booted", tc.state)
		}
	}
	if !onNetworks([]netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")})(addr) ||
		onNetworks([]netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")})(netip.MustParseAddr("10.98.0.1")) ||
		!onNetworks(nil)(netip.MustParseAddr("127.0.0.1")) {
		t.Error("onNetworks")
	}
}
