package proxydhcp

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzDecide feeds arbitrary bytes through parsing and the proxy policy on
// both ports. Whatever arrives, Decide must not panic, and any reply must
// parse again and never offer an address.
func FuzzDecide(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.request.bin"))
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 6, 0})
	env := testEnv(true)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		for _, port := range []int{PortDHCP, PortPXE} {
			d, err := Decide(req, port, env)
			if err != nil {
				if _, ok := IsIgnore(err); !ok {
					t.Fatalf("Decide returned a non-Ignore error: %v", err)
				}
				continue
			}
			back, err := dhcpv4.FromBytes(d.Reply.ToBytes())
			if err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if !back.YourIPAddr.IsUnspecified() {
				t.Fatalf("reply offers address %v", back.YourIPAddr)
			}
			if back.BootFileName == "" {
				t.Fatal("reply without boot file")
			}
			Destination(req, nil)
		}
	})
}
