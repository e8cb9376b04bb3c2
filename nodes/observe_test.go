package nodes

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/inventory"
	"moobi/nodeapi"
)

func TestDecide(t *testing.T) {
	running := Node{State: nodeapi.StateRunning, Address: "10.0.0.5"}
	for _, tc := range []struct {
		name string
		cur  Node
		o    Observation
		want Decision
	}{
		{"script fetch, node still booting: as before", Node{State: nodeapi.StateDHCP, Address: "10.0.0.5"},
			Observation{State: nodeapi.StateFirmware, What: "iPXE fetched its boot script", From: "10.0.0.9", Address: "10.0.0.9"},
			Decision{Apply: true}},
		{"never seen: as before", Node{State: StateUnknown},
			Observation{State: nodeapi.StateDHCP, What: "proxy DHCP: undionly.kpxe"},
			Decision{Apply: true}},
		{"script fetch from another host after running: noted", running,
			Observation{State: nodeapi.StateFirmware, What: "iPXE fetched its boot script", From: "10.0.0.9", Address: "10.0.0.9"},
			Decision{Note: "iPXE fetched its boot script from 10.0.0.9 (unauthenticated; state kept)"}},
		{"script fetch from the node's own address: a reboot", running,
			Observation{State: nodeapi.StateFirmware, What: "iPXE fetched its boot script", From: "10.0.0.5", Address: "10.0.0.5"},
			Decision{Apply: true, NewBoot: true}},
		{"TFTP from the node's own address: a reboot", Node{State: nodeapi.StateFailed, Address: "10.0.0.5"},
			Observation{State: nodeapi.StateFirmware, What: "TFTP: undionly.kpxe", From: "10.0.0.5"},
			Decision{Apply: true, NewBoot: true}},
		{"kernel fetch from another host after verified: noted", Node{State: nodeapi.StateVerified, Address: "10.0.0.5"},
			Observation{State: nodeapi.StateKernel, What: "fetched the kernel", From: "10.0.0.9"},
			Decision{Note: "fetched the kernel from 10.0.0.9 (unauthenticated; state kept)"}},
		{"proxy DHCP naming the MAC after running: noted", running,
			Observation{State: nodeapi.StateDHCP, What: "proxy DHCP: iPXE asked for its script"},
			Decision{Note: "proxy DHCP: iPXE asked for its script (unauthenticated; state kept)"}},
		{"proxy DHCP naming the MAC after failed: noted", Node{State: nodeapi.StateFailed, Address: "10.0.0.5"},
			Observation{State: nodeapi.StateDHCP, What: "proxy DHCP: undionly.kpxe"},
			Decision{Note: "proxy DHCP: undionly.kpxe (unauthenticated; state kept)"}},
		{"DHCP request for another address after running: noted", running,
			Observation{What: "DHCP request for 10.0.0.9", Address: "10.0.0.9"},
			Decision{Note: "DHCP request for 10.0.0.9 (unauthenticated; address kept)"}},
		{"DHCP request for the node's own address after running: nothing", running,
			Observation{What: "DHCP request for 10.0.0.5", Address: "10.0.0.5"},
			Decision{}},
		{"DHCP request while booting: as before", Node{State: nodeapi.StateDHCP},
			Observation{What: "DHCP request for 10.0.0.9", Address: "10.0.0.9"},
			Decision{Apply: true}},
		{"authenticated event from another address: applied", running,
			Observation{State: nodeapi.StateFailed, From: "10.0.0.7", Address: "10.0.0.7", Authenticated: true},
			Decision{Apply: true}},
		{"authenticated fetching after running: a new boot", running,
			Observation{State: nodeapi.StateFetching, From: "10.0.0.7", Address: "10.0.0.7", Authenticated: true},
			Decision{Apply: true, NewBoot: true}},
		{"authenticated fetching after failed: the same boot retrying", Node{State: nodeapi.StateFailed, Address: "10.0.0.5"},
			Observation{State: nodeapi.StateFetching, From: "10.0.0.5", Address: "10.0.0.5", Authenticated: true},
			Decision{Apply: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Decide(tc.cur, tc.o)); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

// bootToRunning takes mac through a whole boot at addr.
func bootToRunning(r *Registry, mac net.HardwareAddr, name, addr string) {
	r.SeenDHCP(mac, name, false, "proxy DHCP: undionly.kpxe")
	r.Addressed(mac, name, netip.MustParseAddr(addr))
	r.SeenAt(addr, nodeapi.StateFirmware, "TFTP: undionly.kpxe")
	r.Seen(mac, name, nodeapi.StateFirmware, "iPXE fetched its boot script", addr)
	r.Report(mac, name, nodeapi.Event{State: nodeapi.StateFetching, Image: "web", Version: "v2"}, addr)
	r.Report(mac, name, nodeapi.Event{State: nodeapi.StateRunning, Image: "web", Version: "v2"}, addr)
}

// TestUnauthenticatedObservationsKeepARunningNode: once a node reported
// running, what any host can send (a script fetch naming its MAC, a proxy
// DHCP request naming it, a DHCP request for another address, a TFTP
// fetch from an address pointed at it) leaves its state, address, version,
// boot and booted address as its own events set them, and shows in its
// event log.
func TestUnauthenticatedObservationsKeepARunningNode(t *testing.T) {
	const own, attacker = "10.0.0.5", "10.0.0.66"
	mac2 := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 2}
	for _, tc := range []struct {
		name     string
		observe  func(r *Registry)
		wantNote string
	}{
		{"script fetch from another host", func(r *Registry) {
			r.Seen(mac1, "n1", nodeapi.StateFirmware, "iPXE fetched its boot script", attacker)
		}, "iPXE fetched its boot script from 10.0.0.66 (unauthenticated; state kept)"},
		{"proxy DHCP naming the MAC", func(r *Registry) {
			r.SeenDHCP(mac1, "n1", true, "proxy DHCP: iPXE asked for its script")
		}, "proxy DHCP: iPXE asked for its script (unauthenticated; state kept)"},
		{"DHCP request for the attacker's address, then TFTP and kernel from it", func(r *Registry) {
			r.Addressed(mac1, "n1", netip.MustParseAddr(attacker))
			r.SeenAt(attacker, nodeapi.StateFirmware, "TFTP: undionly.kpxe")
			r.SeenAt(attacker, nodeapi.StateKernel, "fetched the kernel")
		}, "DHCP request for 10.0.0.66 (unauthenticated; address kept)"},
		// Another host of the inventory, idle, named in a DHCP request
		// for the node's address: the node's address still counts as
		// booted.
		{"another node claims the address", func(r *Registry) {
			r.SeenDHCP(mac2, "n2", false, "proxy DHCP: undionly.kpxe")
			r.Addressed(mac2, "n2", netip.MustParseAddr(own))
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, _ := newTestRegistry()
			bootToRunning(r, mac1, "n1", own)
			c.add(time.Minute)
			before, _ := r.Get(&inventory.Inventory{}, mac1)
			for range 3 { // repeated: noted once
				tc.observe(r)
				c.add(time.Second)
			}
			after, _ := r.Get(&inventory.Inventory{}, mac1)
			if after.State != nodeapi.StateRunning || after.Address != own || after.Version != "v2" || after.Boots != before.Boots ||
				!after.BootStarted.Equal(before.BootStarted) || !after.Updated.Equal(before.Updated) || after.LastEvent != before.LastEvent {
				t.Errorf("after: %s at %s, %s, boot %d from %v, updated %v, last event %q; want as before: %s at %s, %s, boot %d from %v, updated %v, last event %q",
					after.State, after.Address, after.Version, after.Boots, after.BootStarted, after.Updated, after.LastEvent,
					before.State, before.Address, before.Version, before.Boots, before.BootStarted, before.Updated, before.LastEvent)
			}
			if !r.BootedAt(own) {
				t.Errorf("BootedAt(%s) = false: the running node's address no longer counts as booted", own)
			}
			if r.BootedAt(attacker) {
				t.Errorf("BootedAt(%s) = true: the attacker's address counts as booted", attacker)
			}
			var notes []string
			for _, e := range after.Events[len(before.Events):] {
				notes = append(notes, e.State+": "+e.Message)
			}
			var want []string
			if tc.wantNote != "" {
				want = []string{"running: " + tc.wantNote}
			}
			if diff := cmp.Diff(want, notes); diff != "" {
				t.Errorf("events added (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRebootAfterRunning: a running node that reboots shows a new boot at
// its first fetch from its own address, or, with another address, at its
// first event.
func TestRebootAfterRunning(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reboot func(r *Registry)
		want   []string // phases of the new boot
		addr   string
	}{
		{"same address: TFTP", func(r *Registry) {
			r.SeenDHCP(mac1, "n1", false, "proxy DHCP: undionly.kpxe")
			r.Addressed(mac1, "n1", netip.MustParseAddr("10.0.0.5"))
			r.SeenAt("10.0.0.5", nodeapi.StateFirmware, "TFTP: undionly.kpxe")
			r.Seen(mac1, "n1", nodeapi.StateFirmware, "iPXE fetched its boot script", "10.0.0.5")
			r.SeenAt("10.0.0.5", nodeapi.StateKernel, "fetched the kernel")
		}, []string{"firmware", "kernel"}, "10.0.0.5"},
		{"same address: iPXE ROM, script first", func(r *Registry) {
			r.SeenDHCP(mac1, "n1", true, "proxy DHCP: iPXE asked for its script")
			r.Seen(mac1, "n1", nodeapi.StateFirmware, "iPXE fetched its boot script", "10.0.0.5")
		}, []string{"firmware"}, "10.0.0.5"},
		{"another address: the first event", func(r *Registry) {
			r.SeenDHCP(mac1, "n1", false, "proxy DHCP: undionly.kpxe")
			r.Addressed(mac1, "n1", netip.MustParseAddr("10.0.0.7"))
			r.SeenAt("10.0.0.7", nodeapi.StateFirmware, "TFTP: undionly.kpxe")
			r.Seen(mac1, "n1", nodeapi.StateFirmware, "iPXE fetched its boot script", "10.0.0.7")
			r.Report(mac1, "n1", nodeapi.Event{State: nodeapi.StateFetching, Image: "web", Version: "v3"}, "10.0.0.7")
		}, []string{"fetching"}, "10.0.0.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, _ := newTestRegistry()
			bootToRunning(r, mac1, "n1", "10.0.0.5")
			c.add(time.Minute)
			rebooted := c.t
			tc.reboot(r)
			n, _ := r.Get(&inventory.Inventory{}, mac1)
			if diff := cmp.Diff(tc.want, states(n)); diff != "" {
				t.Errorf("new boot's phases (-want +got):\n%s", diff)
			}
			if n.Boots != 2 || !n.BootStarted.Equal(rebooted) || n.Address != tc.addr {
				t.Errorf("boot %d from %v at %s; want boot 2 from %v at %s", n.Boots, n.BootStarted, n.Address, rebooted, tc.addr)
			}
		})
	}
}
