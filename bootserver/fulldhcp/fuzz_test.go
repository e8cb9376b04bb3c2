package fulldhcp

import (
	"testing"

	"moobi/bootserver/internal/dhcptest"
)

// FuzzDecide feeds arbitrary bytes through parsing and the full-mode
// policy, over a table with leases. Decide must not panic; any reply must
// parse again, and an address it hands out must be in the subnet.
func FuzzDecide(f *testing.F) {
	dhcptest.SeedRequests(f, "testdata")
	env := testEnv()
	f.Fuzz(func(t *testing.T, data []byte) {
		req, ok := dhcptest.Request(data)
		if !ok {
			return
		}
		tab := leased()
		d, err := Decide(req, env, tab, t0)
		if err != nil {
			if _, ok := IsIgnore(err); !ok {
				t.Fatalf("Decide returned a non-Ignore error: %v", err)
			}
			return
		}
		tab.Apply(d.Change)
		if d.Reply == nil {
			return
		}
		back := dhcptest.Reparse(t, d.Reply)
		if yi := ip4(back.YourIPAddr); yi.IsValid() && !env.Subnet.Contains(yi) {
			t.Fatalf("reply hands out %v, outside %v", yi, env.Subnet)
		}
		Destination(req, d.Reply)
	})
}

// FuzzParseLeases: the lease file parser never panics, and what it
// accepts it writes back to a file it reads the same.
func FuzzParseLeases(f *testing.F) {
	f.Add(MarshalLeases(leased().Leases()))
	f.Add([]byte(`{"version": 1, "leases": []}`))
	f.Add([]byte(`{"version": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		leases, err := ParseLeases(data)
		if err != nil {
			return
		}
		again, err := ParseLeases(MarshalLeases(leases))
		if err != nil || len(again) != len(leases) {
			t.Fatalf("written leases do not read back: %v (%d, want %d)", err, len(again), len(leases))
		}
	})
}
