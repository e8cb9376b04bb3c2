package nodes

import (
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/inventory"
	"moobi/nodeapi"
)

// savedMACs returns the MACs in the state file at path, in file order.
func savedMACs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file does not parse: %v\n%s", err, b)
	}
	if st.Version != 1 {
		t.Errorf("version %d", st.Version)
	}
	macs := []string{}
	for _, n := range st.Nodes {
		macs = append(macs, n.MAC)
	}
	return macs
}

var (
	mac2 = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 2}
	mac3 = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 3}
)

// listedOnly is a Registry.Listed that lists mac1 only.
func listedOnly(mac string) bool { return mac == mac1.String() }

func TestSaveLeavesOutDHCPOnlyUnlistedNodes(t *testing.T) {
	dhcp := func(r *Registry, mac net.HardwareAddr, name string) {
		r.SeenDHCP(mac, name, false, "proxy DHCP: undionly.kpxe")
	}
	for _, tc := range []struct {
		name   string
		listed func(string) bool
		mac    net.HardwareAddr
		nodeID string // the name the boot services give the node
		steps  func(r *Registry, c *clock, mac net.HardwareAddr, name string)
		saved  bool
	}{
		{name: "unlisted, DHCP only", listed: listedOnly, mac: mac2, nodeID: "unknown-525400123402",
			steps: func(r *Registry, _ *clock, mac net.HardwareAddr, name string) { dhcp(r, mac, name) }},
		{name: "unlisted, DHCP asked again", listed: listedOnly, mac: mac2, nodeID: "unknown-525400123402",
			steps: func(r *Registry, c *clock, mac net.HardwareAddr, name string) {
				dhcp(r, mac, name)
				c.add(time.Second)
				dhcp(r, mac, name)
			}},
		{name: "unlisted, iPXE asked for its script", listed: listedOnly, mac: mac2, nodeID: "unknown-525400123402",
			steps: func(r *Registry, _ *clock, mac net.HardwareAddr, name string) {
				r.SeenDHCP(mac, name, true, "proxy DHCP: iPXE asked for its script")
			}},
		{name: "unlisted, went on to TFTP", listed: listedOnly, mac: mac2, nodeID: "unknown-525400123402", saved: true,
			steps: func(r *Registry, c *clock, mac net.HardwareAddr, name string) {
				dhcp(r, mac, name)
				c.add(time.Second)
				r.Seen(mac, name, nodeapi.StateFirmware, "TFTP: undionly.kpxe", "")
			}},
		{name: "unlisted, booted again", listed: listedOnly, mac: mac2, nodeID: "unknown-525400123402", saved: true,
			steps: func(r *Registry, c *clock, mac net.HardwareAddr, name string) {
				dhcp(r, mac, name)
				c.add(time.Second)
				r.Seen(mac, name, nodeapi.StateFirmware, "TFTP: undionly.kpxe", "")
				c.add(time.Second)
				dhcp(r, mac, name)
			}},
		{name: "unlisted, address known", listed: listedOnly, mac: mac2, nodeID: "unknown-525400123402", saved: true,
			steps: func(r *Registry, _ *clock, mac net.HardwareAddr, name string) {
				dhcp(r, mac, name)
				r.Addressed(mac, name, netip.MustParseAddr("10.0.0.9"))
			}},
		{name: "unlisted, reported a failure", listed: listedOnly, mac: mac2, nodeID: "unknown-525400123402", saved: true,
			steps: func(r *Registry, _ *clock, mac net.HardwareAddr, name string) {
				r.Report(mac, name, nodeapi.Event{State: nodeapi.StateFailed, Reason: "no peers"}, "")
			}},
		{name: "listed, DHCP only", listed: listedOnly, mac: mac1, nodeID: "n1", saved: true,
			steps: func(r *Registry, _ *clock, mac net.HardwareAddr, name string) { dhcp(r, mac, name) }},
		{name: "no Listed, named, DHCP only", mac: mac2, nodeID: "n2", saved: true,
			steps: func(r *Registry, _ *clock, mac net.HardwareAddr, name string) { dhcp(r, mac, name) }},
		{name: "no Listed, nameless, DHCP only", mac: mac2,
			steps: func(r *Registry, _ *clock, mac net.HardwareAddr, name string) { dhcp(r, mac, name) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, _ := newTestRegistry()
			r.Listed = tc.listed
			tc.steps(r, c, tc.mac, tc.nodeID)
			path := filepath.Join(t.TempDir(), "nodes.json")
			if err := r.Save(path); err != nil {
				t.Fatal(err)
			}
			got := slices.Contains(savedMACs(t, path), tc.mac.String())
			if got != tc.saved {
				t.Errorf("saved = %v, want %v", got, tc.saved)
			}
			// Saved or not, the registry still shows the node.
			if _, ok := r.Get(&inventory.Inventory{}, tc.mac); !ok {
				t.Error("node gone from the registry")
			}
		})
	}
}

func TestSaveWritesChanges(t *testing.T) {
	r, c, _ := newTestRegistry()
	r.Listed = func(string) bool { return true }
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "nodes.json")
	load := func() *Registry {
		t.Helper()
		r2 := New()
		if err := r2.Load(path); err != nil {
			t.Fatal(err)
		}
		return r2
	}
	state := func(r *Registry, mac net.HardwareAddr) string {
		n, _ := r.Get(&inventory.Inventory{}, mac)
		return n.State
	}
	for _, step := range []struct {
		name   string
		change func()
		want   map[string]string // MAC → state in the saved file
	}{
		{name: "first save", change: func() {
			r.Seen(mac1, "n1", nodeapi.StateDHCP, "x", "")
			r.Seen(mac2, "n2", nodeapi.StateDHCP, "x", "")
		}, want: map[string]string{mac1.String(): "dhcp", mac2.String(): "dhcp"}},
		{name: "one node changed", change: func() {
			r.Report(mac2, "n2", nodeapi.Event{State: nodeapi.StateRunning}, "10.0.0.2")
		}, want: map[string]string{mac1.String(): "dhcp", mac2.String(): "running"}},
		{name: "a node added", change: func() {
			r.Seen(mac3, "n3", nodeapi.StateKernel, "fetched the kernel", "10.0.0.3")
		}, want: map[string]string{mac1.String(): "dhcp", mac2.String(): "running", mac3.String(): "kernel"}},
		{name: "nothing changed", change: func() {},
			want: map[string]string{mac1.String(): "dhcp", mac2.String(): "running", mac3.String(): "kernel"}},
	} {
		c.add(time.Second)
		step.change()
		if err := r.Save(path); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		macs := savedMACs(t, path)
		if !slices.IsSorted(macs) {
			t.Errorf("%s: nodes not sorted by MAC: %v", step.name, macs)
		}
		r2 := load()
		got := map[string]string{}
		for _, m := range []net.HardwareAddr{mac1, mac2, mac3} {
			if s := state(r2, m); s != "" {
				got[m.String()] = s
			}
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Errorf("%s: saved states (-want +got):\n%s", step.name, diff)
		}
	}
	// Another path gets the whole state even though nothing changed.
	other := filepath.Join(dir, "other.json")
	if err := r.Save(other); err != nil {
		t.Fatal(err)
	}
	if got := savedMACs(t, other); len(got) != 3 {
		t.Errorf("other file holds %v, want 3 nodes", got)
	}
}

func TestSaveDropsForgottenNodes(t *testing.T) {
	r, c, _ := newTestRegistry()
	path := filepath.Join(t.TempDir(), "nodes.json")
	old := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0}
	r.Report(old, "old", nodeapi.Event{State: nodeapi.StateRunning}, "")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	// Fill the registry with newer named nodes until old is forgotten.
	for i := range MaxNodes {
		c.add(time.Millisecond)
		r.Report(net.HardwareAddr{0x52, 0x54, 1, byte(i >> 16), byte(i >> 8), byte(i)}, "x", nodeapi.Event{State: nodeapi.StateRunning}, "")
	}
	if _, ok := r.Get(&inventory.Inventory{}, old); ok {
		t.Fatal("the oldest node was not forgotten")
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	macs := savedMACs(t, path)
	if slices.Contains(macs, old.String()) {
		t.Error("a forgotten node is still saved")
	}
	if len(macs) != r.Len() {
		t.Errorf("%d nodes saved, registry holds %d", len(macs), r.Len())
	}
}

func TestLoadDropsDHCPOnlyUnlistedNodesAtNextSave(t *testing.T) {
	// A file saved before DHCP-only nodes were left out still has them.
	dir := t.TempDir()
	path := filepath.Join(dir, "nodes.json")
	old, c, _ := newTestRegistry()
	old.Seen(mac1, "n1", nodeapi.StateDHCP, "x", "")
	old.Seen(mac2, "unknown-525400123402", nodeapi.StateDHCP, "x", "")
	c.add(time.Second)
	old.Seen(mac3, "unknown-525400123403", nodeapi.StateFirmware, "TFTP: undionly.kpxe", "")
	if err := old.Save(path); err != nil {
		t.Fatal(err)
	}
	if got := savedMACs(t, path); len(got) != 3 {
		t.Fatalf("setup: saved %v", got)
	}
	r := New()
	r.Listed = listedOnly
	if err := r.Load(path); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 3 {
		t.Errorf("loaded %d nodes, want 3 (all are shown)", r.Len())
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	want := []string{mac1.String(), mac3.String()}
	if diff := cmp.Diff(want, savedMACs(t, path)); diff != "" {
		t.Errorf("saved after load (-want +got):\n%s", diff)
	}
}

func TestEvictionOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listed func(string) bool
		// nodes seen in this order, a millisecond apart, by name
		seen []string
		kept []string // of seen, those still there after a storm
	}{
		{name: "unlisted go first, even named", listed: func(mac string) bool { return mac == nodeMAC("a").String() },
			seen: []string{"a", "b"}, kept: []string{"a"}},
		{name: "without Listed, nameless go first", seen: []string{"a", ""}, kept: []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, _ := newTestRegistry()
			r.Listed = tc.listed
			for _, name := range tc.seen {
				c.add(time.Millisecond)
				r.Seen(nodeMAC(name), name, nodeapi.StateRunning, "x", "")
			}
			// A storm of newer unlisted, nameless MACs fills the registry.
			for i := range MaxNodes {
				c.add(time.Millisecond)
				r.SeenDHCP(net.HardwareAddr{2, 0, byte(i >> 16), byte(i >> 8), byte(i), 9}, "", false, "storm")
			}
			if r.Len() != MaxNodes {
				t.Errorf("registry holds %d nodes, want %d", r.Len(), MaxNodes)
			}
			var kept []string
			for _, name := range tc.seen {
				if _, ok := r.Get(&inventory.Inventory{}, nodeMAC(name)); ok {
					kept = append(kept, name)
				}
			}
			if diff := cmp.Diff(tc.kept, kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
}

// nodeMAC is a test node's MAC, by its name ("" is a node of its own).
func nodeMAC(name string) net.HardwareAddr {
	b := byte(0xff)
	if name != "" {
		b = name[0]
	}
	return net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0, b}
}

func TestEvictionOldestFirst(t *testing.T) {
	r, c, _ := newTestRegistry()
	stormMAC := func(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, byte(i >> 16), byte(i >> 8), byte(i), 9} }
	for i := range MaxNodes {
		c.add(time.Millisecond)
		r.Seen(stormMAC(i), "", nodeapi.StateDHCP, "storm", "")
	}
	// Node 0 is seen again: node 1 is now the one updated longest ago.
	c.add(time.Millisecond)
	r.Seen(stormMAC(0), "", nodeapi.StateDHCP, "again", "")
	c.add(time.Millisecond)
	r.Seen(stormMAC(MaxNodes), "", nodeapi.StateDHCP, "new", "")
	inv := &inventory.Inventory{}
	for _, tc := range []struct {
		i    int
		want bool
	}{{0, true}, {1, false}, {2, true}, {MaxNodes, true}} {
		if _, ok := r.Get(inv, stormMAC(tc.i)); ok != tc.want {
			t.Errorf("node %d kept = %v, want %v", tc.i, ok, tc.want)
		}
	}
}

func TestCountsMatchesList(t *testing.T) {
	inv := twoHostInventory(t)
	other := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	for _, tc := range []struct {
		name  string
		steps func(r *Registry)
		want  map[string]int
	}{
		{name: "nothing seen", steps: func(*Registry) {}, want: map[string]int{StateUnknown: 2}},
		{name: "one host seen", steps: func(r *Registry) {
			r.Seen(mac1, "a", nodeapi.StateDHCP, "x", "")
		}, want: map[string]int{StateUnknown: 1, nodeapi.StateDHCP: 1}},
		{name: "hosts and another node", steps: func(r *Registry) {
			r.Seen(mac1, "a", nodeapi.StateDHCP, "x", "")
			r.Report(mac2, "b", nodeapi.Event{State: nodeapi.StateRunning}, "")
			r.Seen(other, "", nodeapi.StateDHCP, "y", "")
		}, want: map[string]int{nodeapi.StateDHCP: 2, nodeapi.StateRunning: 1}},
		{name: "only another node", steps: func(r *Registry) {
			r.Report(other, "", nodeapi.Event{State: nodeapi.StateFailed, Reason: "x"}, "")
		}, want: map[string]int{StateUnknown: 2, nodeapi.StateFailed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, _ := newTestRegistry()
			tc.steps(r)
			fromList := map[string]int{}
			for _, n := range r.List(inv) {
				fromList[n.State]++
			}
			got := r.Counts(inv)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Counts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(fromList, got); diff != "" {
				t.Errorf("Counts differs from counting List (-List +Counts):\n%s", diff)
			}
		})
	}
}

func TestSeenDHCP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string // state before; "" never seen
		ipxe   bool
		want   string
		// wantLast is the last event wanted ("" the proxy DHCP one).
		wantLast string
	}{
		{name: "firmware DHCP, new node", ipxe: false, want: nodeapi.StateDHCP},
		{name: "iPXE ROM, new node", ipxe: true, want: nodeapi.StateDHCP},
		{name: "iPXE after TFTP: same boot", before: nodeapi.StateFirmware, ipxe: true, want: nodeapi.StateFirmware},
		{name: "firmware DHCP after TFTP: reboot", before: nodeapi.StateFirmware, ipxe: false, want: nodeapi.StateDHCP},
		// Once the boot reported, DHCP is noted only (see Decide); the
		// reboot shows at the node's first fetch from its address.
		{name: "iPXE after running: noted", before: nodeapi.StateRunning, ipxe: true, want: nodeapi.StateRunning, wantLast: "before"},
		{name: "firmware DHCP after failed: noted", before: nodeapi.StateFailed, ipxe: false, want: nodeapi.StateFailed, wantLast: "before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, _ := newTestRegistry()
			if tc.before != "" {
				r.Seen(mac1, "n1", tc.before, "before", "")
				c.add(time.Second)
			}
			r.SeenDHCP(mac1, "n1", tc.ipxe, "proxy DHCP")
			n, _ := r.Get(&inventory.Inventory{}, mac1)
			wantLast := tc.wantLast
			if wantLast == "" {
				wantLast = "proxy DHCP"
			}
			if n.State != tc.want || n.LastEvent != wantLast {
				t.Errorf("state %q, last event %q; want %q, %q", n.State, n.LastEvent, tc.want, wantLast)
			}
		})
	}
}

func TestChangedAfterEachChange(t *testing.T) {
	r, _, _ := newTestRegistry()
	for i := range 3 {
		ch := r.Changed()
		if again := r.Changed(); again != ch {
			t.Fatal("two calls without a change between return different channels")
		}
		r.Seen(mac1, "n1", nodeapi.StateDHCP, string(rune('a'+i)), "")
		select {
		case <-ch:
		default:
			t.Fatalf("change %d: channel not closed", i)
		}
	}
}
