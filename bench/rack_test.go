package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		bad  bool
	}{
		{"100mbit", 100e6, false},
		{"1gbit", 1e9, false},
		{" 2.5Gbit", 2.5e9, false},
		{"500kbit", 500e3, false},
		{"100", 0, true},
		{"mbit", 0, true},
		{"-1mbit", 0, true},
		{"100mb", 0, true}, // tc's mb is megabytes: refused rather than guessed
	} {
		got, err := parseRate(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseRate(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestRackBound(t *testing.T) {
	const s = 256 << 20
	node, app := 100e6, 100e6
	one := float64(s) * 8 / node // 21.47 s
	for _, tc := range []struct {
		n    int
		app  float64
		want float64
	}{
		{1, app, one},                   // a node's own link
		{32, app, one},                  // 32·S/(33·B) < S/B: still the node's link
		{32, 1e6, float64(s) * 8 / 1e6}, // the appliance must send it once
		{4, 1e9, one},
	} {
		if got := rackBound(tc.n, s, node, tc.app); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("rackBound(%d, app %v) = %v, want %v", tc.n, tc.app, got, tc.want)
		}
	}
}

func TestRackPlot(t *testing.T) {
	runs := []rackRun{
		{method: "moobi", n: 1, all: 23, bound: 21.5},
		{method: "http", n: 1, all: 22, bound: 21.5},
		{method: "moobi", n: 8, all: 27, bound: 21.5},
		{method: "http", n: 8, all: 172, bound: 21.5},
	}
	svg := rackPlot("256 MiB <test>", runs)
	if !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "&lt;test&gt;") {
		t.Fatalf("not an SVG with an escaped title:\n%s", svg)
	}
	if got := strings.Count(svg, "<polyline"); got != 4 {
		t.Errorf("%d lines drawn, want 4 (moobi, HTTP, bound, 1.5× bound)", got)
	}
	if niceCeil(172) != 200 || niceCeil(21.5) != 50 || niceCeil(1) != 1 {
		t.Errorf("niceCeil: 172→%v 21.5→%v 1→%v", niceCeil(172), niceCeil(21.5), niceCeil(1))
	}
}

func TestCPUFloor(t *testing.T) {
	if got := cpuFloor(32, 6.4, 2); math.Abs(got-102.4) > 1e-9 {
		t.Errorf("cpuFloor(32, 6.4, 2) = %v, want 102.4", got)
	}
	if got := cpuFloor(4, 2, 0); got != 8 {
		t.Errorf("cpuFloor with 0 cores = %v, want it counted as 1 core (8)", got)
	}
}
