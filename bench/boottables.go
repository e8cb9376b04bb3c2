package main

import (
	"fmt"
	"io"
	"strings"
)

// bootSpanRow is a row of a boot report's phase table: the time from one
// milestone to another.
type bootSpanRow = struct{ label, from, to string }

// writeBootSpans writes one phase table row per row of rows, moobi's
// median boot m against the reference's d, each span measured by span.
func writeBootSpans(w io.Writer, rows []bootSpanRow, span func(r bootRun, from, to string) (float64, bool), m, d bootRun) {
	for _, row := range rows {
		mv, mok := span(m, row.from, row.to)
		dv, dok := span(d, row.from, row.to)
		fmt.Fprintf(w, "| %s | %s | %s |\n", row.label, bootCell(mv, mok), bootCell(dv, dok))
	}
}

// writeBootTimeline writes moobi's timeline of the boot m on the firmware
// with MAC mac, as the appliance recorded it.
func writeBootTimeline(w io.Writer, mac string, m bootRun) {
	fmt.Fprintf(w, "moobi's timeline as the appliance recorded it (`GET /v1/nodes/%s`):\n\n| state | start (s after power-on) | seconds |\n|---|---:|---:|\n", mac)
	for _, ph := range m.phases {
		fmt.Fprintf(w, "| %s | %.2f | %.2f |\n", ph.State, m.at[ph.State], ph.Seconds)
	}
	fmt.Fprintf(w, "\n")
}

// writeEveryBoot writes the table of every boot of runs.
func writeEveryBoot(w io.Writer, runs []bootRun) {
	fmt.Fprintf(w, "Every boot:\n\n| firmware | server | run | load at start (1 min) | /init | end |\n|---|---|---:|---|---:|---:|\n")
	for _, r := range runs {
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %.2f |\n", r.firmware, r.server, r.rep, strings.Fields(r.load + " ?")[0], bootCell(r.at["init"], r.at["init"] > 0), r.done())
	}
}
