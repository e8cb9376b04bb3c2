package fulldhcp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLeaseFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "dhcp-leases.json")
	want := leased().Leases()
	if err := SaveLeases(path, want); err != nil {
		t.Fatal(err)
	}
	got, aside, err := LoadLeases(path, t0)
	if err != nil || aside != "" {
		t.Fatalf("LoadLeases: %v (aside %q)", err, aside)
	}
	if diff := cmp.Diff(string(MarshalLeases(want)), string(MarshalLeases(got))); diff != "" || len(got) != 2 {
		t.Errorf("leases after a round trip (-want +got):\n%s", diff)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("folder holds %d files, want the lease file alone (no temporary left)", len(ents))
	}
	if l, _, err := LoadLeases(filepath.Join(t.TempDir(), "none.json"), t0); err != nil || l != nil {
		t.Errorf("missing file: %v %v", l, err)
	}
}

// A corrupt or truncated lease file is an error naming the problem; the
// file is kept aside under a timestamped name, never overwritten.
func TestLeaseFileCorrupt(t *testing.T) {
	good := MarshalLeases(leased().Leases())
	tests := []struct{ name, data, want string }{
		{"truncated", string(good[:len(good)/2]), "not a lease file"},
		{"garbage", "\x00\x01binary", "not a lease file"},
		{"wrong version", `{"version": 9, "leases": []}`, "version 9"},
		{"bad mac", `{"version": 1, "leases": [{"mac": "52:54:00:12:34", "addr": "10.99.0.100", "expires": "2026-12-04T12:00:00Z"}]}`, `MAC "52:54:00:12:34"`},
		{"ipv6", `{"version": 1, "leases": [{"mac": "52:54:00:12:34:01", "addr": "fd99::1", "expires": "2026-12-04T12:00:00Z"}]}`, "not IPv4"},
		{"twice", `{"version": 1, "leases": [{"mac": "52:54:00:12:34:01", "addr": "10.99.0.100", "expires": "2026-12-04T12:00:00Z"}, {"mac": "52:54:00:12:34:02", "addr": "10.99.0.100", "expires": "2026-12-04T12:00:00Z"}]}`, "leased twice"},
		{"trailing", string(good) + "{}", "data after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dhcp-leases.json")
			os.WriteFile(path, []byte(tc.data), 0o644)
			leases, aside, err := LoadLeases(path, t0)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err %v, want one naming the file and %q", err, tc.want)
			}
			if leases != nil {
				t.Errorf("leases %v from a corrupt file", leases)
			}
			if want := path + ".corrupt-20261204T120000Z"; aside != want {
				t.Errorf("kept aside as %q, want %q", aside, want)
			}
			if b, err := os.ReadFile(aside); err != nil || string(b) != tc.data {
				t.Errorf("the corrupt file was not kept whole: %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("corrupt file still in place: %v", err)
			}
		})
	}
}
