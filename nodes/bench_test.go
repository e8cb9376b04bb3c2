package nodes

import (
	"net"
	"path/filepath"
	"testing"

	"moobi/inventory"
	"moobi/nodeapi"
)

func benchMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

// BenchmarkSaveRack saves a registry of MaxNodes nodes that booted (each
// with a timeline and events) after one of them changed: the steady state
// of a large site.
func BenchmarkSaveRack(b *testing.B) {
	r := New()
	for i := range MaxNodes {
		r.Seen(benchMAC(i), "", nodeapi.StateDHCP, "proxy DHCP: undionly.kpxe", "")
		r.Report(benchMAC(i), "", nodeapi.Event{State: nodeapi.StateRunning, Image: "web", Version: "v1"}, "10.0.0.1")
	}
	path := filepath.Join(b.TempDir(), "nodes.json")
	if err := r.Save(path); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r.Report(benchMAC(i%MaxNodes), "", nodeapi.Event{State: nodeapi.StateRunning, Message: "still"}, "10.0.0.1")
		if err := r.Save(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeenStorm is the registry's part of a proxy DHCP reply to a new
// MAC when the registry is full: a DHCP storm from random MACs.
func BenchmarkSeenStorm(b *testing.B) {
	r := New()
	for i := range MaxNodes {
		r.Seen(benchMAC(i), "unknown", nodeapi.StateDHCP, "proxy DHCP: undionly.kpxe", "")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r.Seen(benchMAC(MaxNodes+i), "unknown", nodeapi.StateDHCP, "proxy DHCP: undionly.kpxe", "")
	}
}

// BenchmarkCounts is one metrics scrape's node counts over a full registry.
func BenchmarkCounts(b *testing.B) {
	r := New()
	for i := range MaxNodes {
		r.Seen(benchMAC(i), "", nodeapi.StateDHCP, "proxy DHCP: undionly.kpxe", "")
	}
	inv := &inventory.Inventory{}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Counts(inv)
	}
}
