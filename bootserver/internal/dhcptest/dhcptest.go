// Package dhcptest holds what the tests of the DHCP packages (proxydhcp,
// fulldhcp) share: fuzz corpora seeded with their golden request packets,
// and the parsing every fuzz target does on its input and its reply.
package dhcptest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// SeedRequests adds each golden request packet in dir (*.request.bin, as
// the golden tests' -update writes them) to f's corpus, and an empty
// packet. It fails f if a packet cannot be read or dir holds none.
func SeedRequests(f *testing.F, dir string) {
	f.Helper()
	seeds, err := filepath.Glob(filepath.Join(dir, "*.request.bin"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no golden request packets (*.request.bin) in %s (%v)", dir, err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
}

// Request parses a fuzz input as a DHCPv4 packet; ok is false if it is
// none (the input then reaches no policy).
func Request(data []byte) (req *dhcpv4.DHCPv4, ok bool) {
	req, err := dhcpv4.FromBytes(data)
	return req, err == nil
}

// Reparse returns reply as a client reads it off the wire, and fails the
// test if it does not parse.
func Reparse(t *testing.T, reply *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	t.Helper()
	back, err := dhcpv4.FromBytes(reply.ToBytes())
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return back
}
