package main

import "testing"

func TestParseTableFulls(t *testing.T) {
	const stat = `entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls
00000000 00006858 000066f8 00000005   00246c2a 00071fd6 00002401   00000000         00000000         00000000         000c08a7       00000000            000bf4b3
00000000 00006bb5 00006d15 00000006   0025198a 00074dfc 000025d9   00000000         00000000         000007c9         000bf80c       00000000            00000010
`
	got, err := parseTableFulls(stat)
	if want := int64(0xbf4b3 + 0x10); err != nil || got != want {
		t.Errorf("parseTableFulls = %d, %v; want %d", got, err, want)
	}
	for _, bad := range []string{"entries allocs\n1 2\n", "table_fulls\nzz\n", "a table_fulls\n1\n"} {
		if _, err := parseTableFulls(bad); err == nil {
			t.Errorf("parseTableFulls(%q): no error", bad)
		}
	}
}
