package power

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMatch(t *testing.T) {
	hosts := []Host{
		{"rack1-node01", "web", true},
		{"rack1-node02", "web", true},
		{"rack1-node03", "db", false},
		{"rack2-node01", "db", true},
		{"spare", "rescue", false},
	}
	tests := []struct {
		targets []string
		want    []string
		err     string
	}{
		{[]string{"rack1-node01"}, []string{"rack1-node01"}, ""},
		{[]string{"rack1-*"}, []string{"rack1-node01", "rack1-node02"}, ""},
		{[]string{"rack?-node01"}, []string{"rack1-node01", "rack2-node01"}, ""},
		{[]string{"profile:db"}, []string{"rack2-node01"}, ""},
		{[]string{"all"}, []string{"rack1-node01", "rack1-node02", "rack2-node01"}, ""},
		{[]string{"rack1-node02", "rack1-*", "rack1-node02"}, []string{"rack1-node01", "rack1-node02"}, ""},
		{[]string{"rack1-node03"}, nil, `target "rack1-node03": the host has no bmc in hosts.yaml`},
		{[]string{"nosuch"}, nil, `target "nosuch": no such host in hosts.yaml`},
		{[]string{"rack3-*"}, nil, `target "rack3-*": names no host with a bmc`},
		{[]string{"profile:rescue"}, nil, `target "profile:rescue": names no host with a bmc`},
		{[]string{"rack1-[", "nosuch"}, nil, `target "rack1-[": malformed glob; target "nosuch": no such host in hosts.yaml`},
		{nil, nil, "no targets"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.targets, ","), func(t *testing.T) {
			got, err := Match(hosts, tc.targets)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Match = %v, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
		})
	}
}

func TestParseAction(t *testing.T) {
	for _, a := range Actions {
		if got, err := ParseAction(string(a)); err != nil || got != a {
			t.Errorf("ParseAction(%q) = %q, %v", a, got, err)
		}
	}
	if _, err := ParseAction("reboot"); err == nil || !strings.Contains(err.Error(), `unknown power action "reboot"`) {
		t.Errorf("ParseAction(reboot): %v", err)
	}
}

// FuzzMatch: no target crashes Match, and what it returns are hosts with
// a BMC, sorted, each once.
func FuzzMatch(f *testing.F) {
	hosts := []Host{{"rack1-node01", "web", true}, {"rack1-node02", "web", false}, {"db1", "db", true}}
	for _, s := range []string{"all", "rack1-*", "profile:web", "db1", "[", "rack?-node0[1-2]", "profile:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		got, err := Match(hosts, []string{target})
		if err != nil {
			return
		}
		for i, name := range got {
			if name == "rack1-node02" {
				t.Fatalf("Match(%q) took a host without a BMC", target)
			}
			if i > 0 && got[i-1] >= name {
				t.Fatalf("Match(%q) = %v: not sorted and unique", target, got)
			}
		}
	})
}
