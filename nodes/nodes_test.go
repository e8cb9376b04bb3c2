package nodes

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/inventory"
	"moobi/nodeapi"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }

type phaseLog struct {
	phases map[string][]time.Duration
	boots  []time.Duration
}

func (p *phaseLog) PhaseDone(state string, d time.Duration) {
	if p.phases == nil {
		p.phases = map[string][]time.Duration{}
	}
	p.phases[state] = append(p.phases[state], d)
}
func (p *phaseLog) BootDone(d time.Duration) { p.boots = append(p.boots, d) }

func newTestRegistry() (*Registry, *clock, *phaseLog) {
	c := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	r := New()
	r.now = c.now
	obs := &phaseLog{}
	r.Observer = obs
	return r, c, obs
}

var mac1 = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 1}

func states(n Node) []string {
	var s []string
	for _, p := range n.Phases {
		s = append(s, p.State)
	}
	return s
}

func TestTimeline(t *testing.T) {
	r, c, obs := newTestRegistry()
	inv := &inventory.Inventory{}
	step := func(d time.Duration) { c.add(d) }

	r.Seen(mac1, "n1", nodeapi.StateDHCP, "proxy DHCP: undionly.kpxe", "")
	step(1 * time.Second)
	r.Addressed(mac1, "n1", netip.MustParseAddr("10.0.0.5"))
	r.Seen(mac1, "n1", nodeapi.StateFirmware, "TFTP: undionly.kpxe", "")
	step(2 * time.Second)
	r.Seen(mac1, "n1", nodeapi.StateFirmware, "iPXE fetched its boot script", "10.0.0.5")
	step(3 * time.Second)
	r.Seen(mac1, "n1", nodeapi.StateKernel, "fetched the kernel", "10.0.0.5")
	step(4 * time.Second)
	r.Report(mac1, "n1", nodeapi.Event{State: nodeapi.StateFetching, Image: "web", Version: "v1", Done: 10, Total: 100}, "10.0.0.5")
	step(1 * time.Second)
	r.Report(mac1, "n1", nodeapi.Event{State: nodeapi.StateFetching, Done: 60, Total: 100, FromPeers: 50, FromSeed: 10}, "10.0.0.5")
	step(5 * time.Second)
	r.Report(mac1, "n1", nodeapi.Event{State: nodeapi.StateVerified, Done: 100, Total: 100, FromPeers: 60, FromApp: 30, FromSeed: 10}, "10.0.0.5")
	step(2 * time.Second)
	r.Report(mac1, "n1", nodeapi.Event{State: nodeapi.StateRunning, Message: "pivoted"}, "10.0.0.5")
	step(10 * time.Second)

	n, ok := r.Get(inv, mac1)
	if !ok {
		t.Fatal("node not found")
	}
	if diff := cmp.Diff([]string{"dhcp", "firmware", "kernel", "fetching", "verified", "running"}, states(n)); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	wantSecs := []float64{1, 5, 4, 6, 2, 10} // the open running phase counts up to now
	for i, p := range n.Phases {
		if p.Seconds != wantSecs[i] {
			t.Errorf("phase %s: %v s, want %v", p.State, p.Seconds, wantSecs[i])
		}
	}
	if n.State != "running" || n.Address != "10.0.0.5" || n.Image != "web" || n.Done != 100 || n.FromPeers != 60 || n.FromApp != 30 || n.FromSeed != 10 || n.Boots != 1 {
		t.Errorf("node = %+v", n)
	}
	// Phase durations reached the observer once each; the boot took 18 s until running.
	if got := obs.phases["fetching"]; len(got) != 1 || got[0] != 6*time.Second {
		t.Errorf("fetching observed %v", got)
	}
	if diff := cmp.Diff([]time.Duration{18 * time.Second}, obs.boots); diff != "" {
		t.Errorf("boots (-want +got):\n%s", diff)
	}
	// Progress reports do not flood the event log; state changes are there.
	var logged []string
	for _, e := range n.Events {
		logged = append(logged, e.Source+":"+e.State)
	}
	want := []string{"appliance:dhcp", "appliance:firmware", "appliance:firmware", "appliance:kernel", "node:fetching", "node:verified", "node:running"}
	if diff := cmp.Diff(want, logged); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// A failure, then a reboot: the reason stays as last_error, the
	// timeline starts over. The boot reported, so its DHCP is only noted
	// (see Decide); its fetch from its own address begins the new boot.
	r.Report(mac1, "n1", nodeapi.Event{State: nodeapi.StateFailed, Reason: "cache device /dev/vdb missing"}, "10.0.0.5")
	step(time.Second)
	r.SeenDHCP(mac1, "n1", false, "proxy DHCP: undionly.kpxe")
	r.Addressed(mac1, "n1", netip.MustParseAddr("10.0.0.5"))
	if n, _ = r.Get(inv, mac1); n.State != nodeapi.StateFailed || n.Boots != 1 {
		t.Errorf("after the reboot's DHCP: %s, boot %d; want failed, boot 1", n.State, n.Boots)
	}
	r.SeenAt("10.0.0.5", nodeapi.StateFirmware, "TFTP: undionly.kpxe")
	n, _ = r.Get(inv, mac1)
	if diff := cmp.Diff([]string{"firmware"}, states(n)); diff != "" {
		t.Errorf("after reboot phases (-want +got):\n%s", diff)
	}
	if n.Reason != "" || n.LastError != "cache device /dev/vdb missing" || n.Boots != 2 || n.Done != 0 || n.FromApp != 0 {
		t.Errorf("after reboot: %+v", n)
	}
}

func TestListOmitsEventsAndIncludesUnseenHosts(t *testing.T) {
	r, _, _ := newTestRegistry()
	inv := twoHostInventory(t)
	r.Seen(mac1, "", nodeapi.StateDHCP, "x", "")
	other := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	r.Seen(other, "", nodeapi.StateDHCP, "y", "")
	list := r.List(inv)
	var got []string
	for _, n := range list {
		got = append(got, n.Name+"/"+n.MAC+"/"+n.State)
		if n.Events != nil {
			t.Errorf("%s: list carries events", n.MAC)
		}
	}
	want := []string{"/02:00:00:00:00:09/dhcp", "a/52:54:00:12:34:01/dhcp", "b/52:54:00:12:34:02/unknown"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if n, ok := r.Get(inv, net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 2}); !ok || n.State != StateUnknown || n.Name != "b" {
		t.Errorf("Get(unseen host) = %+v, %v", n, ok)
	}
	if _, ok := r.Get(inv, net.HardwareAddr{2, 0, 0, 0, 0, 8}); ok {
		t.Error("Get(unknown MAC) found a node")
	}
}

// TestAddressed: the address a node asked the site DHCP server for is the
// address shown for it (it authorizes nothing: see boottoken).
func TestAddressed(t *testing.T) {
	r, _, _ := newTestRegistry()
	r.Addressed(mac1, "n1", netip.MustParseAddr("10.0.0.8"))
	if n, _ := r.Get(&inventory.Inventory{}, mac1); n.Address != "10.0.0.8" {
		t.Fatalf("address %q, want 10.0.0.8", n.Address)
	}
	if mac, _, ok := r.ByAddress("10.0.0.8"); !ok || mac != mac1.String() {
		t.Fatalf("ByAddress = %q, %v", mac, ok)
	}
}

func TestByAddressPrefersLatest(t *testing.T) {
	r, c, _ := newTestRegistry()
	mac2 := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 2}
	r.Seen(mac1, "old", nodeapi.StateRunning, "x", "10.0.0.9")
	c.add(time.Minute)
	r.Seen(mac2, "new", nodeapi.StateFirmware, "y", "10.0.0.9")
	for range 20 { // map order is random: ask often
		if mac, name, ok := r.ByAddress("10.0.0.9"); !ok || mac != mac2.String() || name != "new" {
			t.Fatalf("ByAddress = %s %s %v, want the latest node", mac, name, ok)
		}
	}
}

// The address index follows a node to a new address, forgets evicted
// nodes and is rebuilt by Load.
func TestByAddressFollowsChanges(t *testing.T) {
	r, c, _ := newTestRegistry()
	r.Seen(mac1, "n1", nodeapi.StateFirmware, "x", "10.0.0.7")
	r.Addressed(mac1, "n1", netip.MustParseAddr("10.0.0.8"))
	if _, _, ok := r.ByAddress("10.0.0.7"); ok {
		t.Error("the node's old address still finds it")
	}
	if mac, _, ok := r.ByAddress("10.0.0.8"); !ok || mac != mac1.String() {
		t.Errorf("ByAddress(new address) = %s %v, want %s", mac, ok, mac1)
	}

	path := filepath.Join(t.TempDir(), "nodes.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	r2, _, _ := newTestRegistry()
	if err := r2.Load(path); err != nil {
		t.Fatal(err)
	}
	if mac, _, ok := r2.ByAddress("10.0.0.8"); !ok || mac != mac1.String() {
		t.Errorf("after Load, ByAddress = %s %v, want %s", mac, ok, mac1)
	}

	// Fill the registry with newer nodes: mac1, updated longest ago,
	// is forgotten, and so is its address.
	for i := range MaxNodes {
		c.add(time.Millisecond)
		mac := net.HardwareAddr{0x52, 0x54, 0, 0x77, byte(i >> 8), byte(i)}
		r.Seen(mac, fmt.Sprintf("n%d", i), nodeapi.StateFirmware, "x", fmt.Sprintf("10.1.%d.%d", i>>8, i&0xff))
	}
	if _, _, ok := r.ByAddress("10.0.0.8"); ok {
		t.Error("a forgotten node is still found by its address")
	}
	if mac, _, ok := r.ByAddress("10.1.3.4"); !ok || mac != "52:54:00:77:03:04" {
		t.Errorf("ByAddress(10.1.3.4) = %s %v", mac, ok)
	}
}

func TestChanged(t *testing.T) {
	r, _, _ := newTestRegistry()
	ch := r.Changed()
	before := r.Seq()
	select {
	case <-ch:
		t.Fatal("Changed closed before any change")
	default:
	}
	r.Seen(mac1, "n1", nodeapi.StateDHCP, "x", "")
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed after a change")
	}
	n, _ := r.Get(&inventory.Inventory{}, mac1)
	if r.Seq() <= before || n.Seq != r.Seq() {
		t.Errorf("seq %d -> %d, node seq %d", before, r.Seq(), n.Seq)
	}
}

func TestSaveLoad(t *testing.T) {
	r, c, _ := newTestRegistry()
	r.Seen(mac1, "n1", nodeapi.StateDHCP, "x", "")
	c.add(time.Second)
	r.Report(mac1, "n1", nodeapi.Event{State: nodeapi.StateFailed, Reason: "no peers"}, "10.0.0.5")
	path := filepath.Join(t.TempDir(), "state", "nodes.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	r2 := New()
	if err := r2.Load(path); err != nil {
		t.Fatal(err)
	}
	inv := &inventory.Inventory{}
	a, _ := r.Get(inv, mac1)
	b, _ := r2.Get(inv, mac1)
	a.Phases[len(a.Phases)-1].Seconds, b.Phases[len(b.Phases)-1].Seconds = 0, 0 // open phase: up to each registry's now
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("restored node differs (-saved +loaded):\n%s", diff)
	}
	if r2.Seq() != r.Seq() {
		t.Errorf("restored seq %d, want %d", r2.Seq(), r.Seq())
	}
}

func TestLoadCorruptKeepsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodes.json")
	os.WriteFile(path, []byte(`{"version":1,"nodes":[{"mac":`), 0o644)
	r := New()
	err := r.Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "moved it to") {
		t.Fatalf("Load(corrupt) = %v; want an error naming the file and where it went", err)
	}
	if b, err := os.ReadFile(path + ".bad"); err != nil || !strings.Contains(string(b), `"nodes"`) {
		t.Fatalf("corrupt file not kept aside: %v", err)
	}
	if r.Len() != 0 {
		t.Errorf("registry has %d nodes after a failed load", r.Len())
	}
	if err := New().Load(filepath.Join(dir, "missing.json")); err != nil {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestPersistSavesOnChangeAndExit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	r := New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := r.Load(path); err != nil {
		t.Fatal(err)
	}
	go func() { done <- r.Persist(ctx, path, 10*time.Millisecond, log) }()
	r.Seen(mac1, "n1", nodeapi.StateDHCP, "x", "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r2 := New()
		if r2.Load(path) == nil && r2.Len() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the change was not saved within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Report(mac1, "n1", nodeapi.Event{State: nodeapi.StateRunning}, "")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r2 := New()
	if err := r2.Load(path); err != nil {
		t.Fatal(err)
	}
	if n, _ := r2.Get(&inventory.Inventory{}, mac1); n.State != nodeapi.StateRunning {
		t.Errorf("after exit the saved state is %q, want running", n.State)
	}
}

func TestRegistryBounded(t *testing.T) {
	r, c, _ := newTestRegistry()
	known := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	r.Seen(known, "rack1-node01", nodeapi.StateRunning, "x", "")
	stormMAC := func(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, byte(i >> 16), byte(i >> 8), byte(i), 9} }
	for i := range MaxNodes + 500 {
		c.add(time.Millisecond)
		r.Seen(stormMAC(i), "", nodeapi.StateDHCP, "storm", "")
	}
	if n := r.Len(); n > MaxNodes {
		t.Fatalf("registry holds %d nodes, more than %d", n, MaxNodes)
	}
	if _, ok := r.Get(&inventory.Inventory{}, known); !ok {
		t.Fatal("a named node was forgotten before nameless ones")
	}
	if _, ok := r.Get(&inventory.Inventory{}, stormMAC(MaxNodes+499)); !ok {
		t.Fatal("the newest node was forgotten")
	}
}

func TestSeenAt(t *testing.T) {
	r, c, _ := newTestRegistry()
	if r.SeenAt("10.0.0.5", nodeapi.StateKernel, "fetched the kernel") {
		t.Fatal("SeenAt recorded a node at an address nobody holds")
	}
	r.Seen(mac1, "n1", nodeapi.StateFirmware, "iPXE fetched its boot script", "10.0.0.5")
	c.add(time.Second)
	if !r.SeenAt("10.0.0.5", nodeapi.StateKernel, "fetched the kernel") {
		t.Fatal("SeenAt did not find the node at its address")
	}
	n, _ := r.Get(&inventory.Inventory{}, mac1)
	if n.State != nodeapi.StateKernel || n.LastEvent != "fetched the kernel" || n.Address != "10.0.0.5" || n.Name != "n1" {
		t.Errorf("node = %+v", n)
	}
}

// twoHostInventory lists hosts a (52:54:00:12:34:01) and b
// (52:54:00:12:34:02), both booting profile p.
func twoHostInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(kernel, []byte("k"), 0o644)
	inv, err := inventory.Parse("hosts.yaml", []byte(`appliance:
  interface: lo
profiles:
  p:
    kernel: `+kernel+`
hosts:
  a:
    mac: 52:54:00:12:34:01
    profile: p
  b:
    mac: 52:54:00:12:34:02
    profile: p
`))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}
