package nodes

import (
	"maps"
	"net"
	"testing"
	"time"

	"moobi/nodeapi"
)

func TestStateAges(t *testing.T) {
	r, c, _ := newTestRegistry()
	mac2 := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 2}
	mac3 := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 3}
	if got := r.StateAges(); len(got) != 0 {
		t.Errorf("StateAges of an empty registry = %v, want none", got)
	}
	r.Seen(mac1, "n1", nodeapi.StateDHCP, "proxy DHCP", "")
	c.add(10 * time.Second)
	r.Seen(mac2, "n2", nodeapi.StateDHCP, "proxy DHCP", "")
	r.Seen(mac3, "n3", nodeapi.StateDHCP, "proxy DHCP", "")
	c.add(5 * time.Second)
	// n3 moves on; n1 is seen again in the same state, which does not
	// start a new phase: its age still counts from when it entered dhcp.
	r.Seen(mac3, "n3", nodeapi.StateFirmware, "TFTP", "")
	r.Seen(mac1, "n1", nodeapi.StateDHCP, "proxy DHCP again", "")
	c.add(time.Minute)
	r.Report(mac3, "n3", nodeapi.Event{State: nodeapi.StateFailed, Reason: "test"}, "")
	c.add(time.Second)
	want := map[string]time.Duration{
		nodeapi.StateDHCP:   76 * time.Second, // n1, not n2 (66 s)
		nodeapi.StateFailed: time.Second,
	}
	if got := r.StateAges(); !maps.Equal(got, want) {
		t.Errorf("StateAges = %v, want %v", got, want)
	}
}
