package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moobi/lab"
)

// TestBootTables: the tables both boot reports write, from one moobi and
// one reference boot; a milestone a boot lacks shows as a dash.
func TestBootTables(t *testing.T) {
	m := bootRun{server: "moobi", firmware: lab.BIOS, rep: 1, end: "running", load: "1.50 1.2 1.0",
		at:     map[string]float64{"init": 10, "fetching": 12.5, "verified": 20, "running": 25},
		phases: []bootPhase{{State: "fetching", Seconds: 7.5}, {State: "verified", Seconds: 5}}}
	d := bootRun{server: "dnsmasq", firmware: lab.BIOS, rep: 1, end: "marker", at: map[string]float64{"init": 8, "marker": 9.25}}
	rows := []bootSpanRow{{"to /init", "", "init"}, {"fetching", "fetching", "verified"}}
	var w strings.Builder
	writeBootSpans(&w, rows, bootSpan, m, d)
	writeBootTimeline(&w, "52:54:00:00:00:01", m)
	writeEveryBoot(&w, []bootRun{m, d})
	want := `| to /init | 10.00 | 8.00 |
| fetching | 7.50 | – |
moobi's timeline as the appliance recorded it (` + "`GET /v1/nodes/52:54:00:00:00:01`" + `):

| state | start (s after power-on) | seconds |
|---|---:|---:|
| fetching | 12.50 | 7.50 |
| verified | 20.00 | 5.00 |

Every boot:

| firmware | server | run | load at start (1 min) | /init | end |
|---|---|---:|---|---:|---:|
| bios | moobi | 1 | 1.50 | 10.00 | 25.00 |
| bios | dnsmasq | 1 | ? | 8.00 | 9.25 |
`
	if diff := cmp.Diff(want, w.String()); diff != "" {
		t.Errorf("boot tables (-want +got):\n%s", diff)
	}
}
