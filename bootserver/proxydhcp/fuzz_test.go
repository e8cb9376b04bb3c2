package proxydhcp

import (
	"testing"

	"moobi/bootserver/internal/dhcptest"
)

// FuzzDecide feeds arbitrary bytes through parsing and the proxy policy on
// both ports. Whatever arrives, Decide must not panic, and any reply must
// parse again and never offer an address.
func FuzzDecide(f *testing.F) {
	dhcptest.SeedRequests(f, "testdata")
	f.Add([]byte{1, 1, 6, 0})
	env := testEnv(true)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, ok := dhcptest.Request(data)
		if !ok {
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
			back := dhcptest.Reparse(t, d.Reply)
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
