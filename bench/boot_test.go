package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/lab"
)

// The testdata/boot-* files are logs of real boots (trimmed): a BIOS VM by
// moobi and the same VM by dnsmasq + nginx, on 2026-11-25.

func stampedTestdata(t *testing.T, name string) []stampedLine {
	t.Helper()
	lines, err := readStampedFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReadStamped(t *testing.T) {
	lines, err := readStamped(strings.NewReader("2026-11-25T23:30:02.5Z [    0.000000] Linux version 6.1\n2026-11-25T23:30:03Z \n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []stampedLine{{mustTime(t, "2026-11-25T23:30:02.5Z"), "[    0.000000] Linux version 6.1"}, {mustTime(t, "2026-11-25T23:30:03Z"), ""}}
	if diff := cmp.Diff(want, lines, cmp.AllowUnexported(stampedLine{})); diff != "" {
		t.Errorf("readStamped (-want +got):\n%s", diff)
	}
	if _, err := readStamped(strings.NewReader("not-a-time text\n")); err == nil {
		t.Error("readStamped accepted a line without a time")
	}
}

func TestConsoleMilestones(t *testing.T) {
	for _, tc := range []struct {
		file    string
		markers map[string]string
		want    map[string]string
	}{
		{"boot-console-moobi.log", moobiConsoleMarkers, map[string]string{
			"linux": "2026-11-25T23:28:52.686082959Z",
			"init":  "2026-11-25T23:29:00.925380515Z",
			// A node client that loaded every module before the network.
			"modules":     "2026-11-25T23:29:10.725880529Z",
			"modules-all": "2026-11-25T23:29:10.725880529Z",
			"config":      "2026-11-25T23:29:11.246476684Z",
			"image":       "2026-11-25T23:29:44.023897059Z",
		}},
		{"boot-console-reference.log", map[string]string{"marker": bootMarker}, map[string]string{
			"linux":  "2026-11-25T23:30:02.075648178Z",
			"init":   "2026-11-25T23:30:24.375141617Z",
			"marker": "2026-11-25T23:30:24.779850634Z",
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := consoleMilestones(stampedTestdata(t, tc.file), tc.markers)
			want := map[string]time.Time{}
			for k, v := range tc.want {
				want[k] = mustTime(t, v)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("consoleMilestones (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDnsmasqMilestones(t *testing.T) {
	// BIOS: the NIC's ROM is iPXE, so there is no TFTP; the first proxy
	// answer is the one to the DISCOVER, not the later one on port 4011.
	got := dnsmasqMilestones(stampedTestdata(t, "boot-dnsmasq-bios.log"), "52:54:00:B0:07:01")
	want := map[string]time.Time{"dhcp": mustTime(t, "2026-11-25T23:29:53.257465542Z")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BIOS (-want +got):\n%s", diff)
	}
	// UEFI: OVMF's own PXE asks first; its tsize probe of ipxe.efi (aborted,
	// yet logged as "sent") is not the transfer.
	got = dnsmasqMilestones(stampedTestdata(t, "boot-dnsmasq-uefi.log"), "52:54:00:b0:07:02")
	want = map[string]time.Time{
		"dhcp": mustTime(t, "2026-11-25T23:35:21.121848569Z"),
		"tftp": mustTime(t, "2026-11-25T23:35:30.243732146Z"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UEFI (-want +got):\n%s", diff)
	}
	if got := dnsmasqMilestones(stampedTestdata(t, "boot-dnsmasq-bios.log"), "52:54:00:b0:07:99"); len(got) != 0 {
		t.Errorf("another MAC: got %v, want nothing", got)
	}
}

func TestParseNginxAccess(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "boot-nginx-access.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs, err := parseNginxAccess(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 4 {
		t.Fatalf("got %d requests, want 4", len(reqs))
	}
	initrd := reqs[3]
	if initrd.path != "/initrd.cpio.gz" || initrd.status != 200 || initrd.bytes != 69263393 || initrd.client != "10.99.0.197" {
		t.Errorf("initrd request: %+v", initrd)
	}
	if got, want := initrd.end.Sub(initrd.start), 4455*time.Millisecond; got != want {
		t.Errorf("initrd request took %v, want %v", got, want)
	}

	// The bench's own readiness check (at …387.040) comes before the VM's
	// power-on and does not count.
	poweron := time.UnixMilli(1795649390000)
	got := nginxMilestones(reqs, poweron)
	want := map[string]time.Time{
		"script":  time.UnixMilli(1795649393382),
		"kernel":  time.UnixMilli(1795649395031 - 1586),
		"fetched": time.UnixMilli(1795649399541),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nginxMilestones (-want +got):\n%s", diff)
	}

	for _, bad := range []string{"1795649393.382 0.000 200 158\n", "x 0.000 200 158 10.99.0.197 \"GET / HTTP/1.1\"\n"} {
		if _, err := parseNginxAccess(strings.NewReader(bad)); err == nil {
			t.Errorf("parseNginxAccess(%q) did not fail", bad)
		}
	}
}

func TestMoobiLogMilestones(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "boot-appliance.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entries []lab.LogEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e lab.LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	got := moobiLogMilestones(entries, "52:54:00:b0:07:01")
	// The script, then the last of kernel, node initramfs and modules; the
	// boot config and torrent requests that follow do not count.
	want := map[string]time.Time{
		"script":  mustTime(t, "2026-11-25T23:28:48.728143506Z"),
		"fetched": mustTime(t, "2026-11-25T23:28:50.459968432Z"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("moobiLogMilestones (-want +got):\n%s", diff)
	}
}

func TestBootSpanAndMedian(t *testing.T) {
	runs := []bootRun{
		{server: "dnsmasq", firmware: lab.BIOS, at: map[string]float64{"kernel": 6.4, "marker": 40}},
		{server: "dnsmasq", firmware: lab.BIOS, at: map[string]float64{"kernel": 6.4, "marker": 37.7}},
		{server: "dnsmasq", firmware: lab.BIOS, at: map[string]float64{"kernel": 6.4, "marker": 106.5}},
		{server: "moobi", firmware: lab.BIOS, at: map[string]float64{"kernel": 4, "fetching": 32.25, "running": 57.6}},
	}
	m, ok := bootMedian(runs, "dnsmasq", lab.BIOS)
	if !ok || m.done() != 40 {
		t.Errorf("median dnsmasq run ends at %v, want 40", m.done())
	}
	if _, ok := bootMedian(runs, "moobi", lab.UEFI); ok {
		t.Error("a median of no runs")
	}
	if v, ok := bootSpan(runs[3], "kernel", "kernel-end"); !ok || v != 28.25 {
		t.Errorf("moobi kernel phase %v, %v; want 28.25", v, ok)
	}
	if v, ok := bootSpan(runs[1], "kernel", "kernel-end"); !ok || v < 31.29 || v > 31.31 {
		t.Errorf("reference kernel phase %v, %v; want 31.3", v, ok)
	}
	if _, ok := bootSpan(runs[1], "fetching", "verified"); ok {
		t.Error("the reference has no fetching phase")
	}
}

// TestBootTargets: the goal is the reference's median marker plus the
// image at 1 Gbit/s plus 5 s; a firmware without reference boots has no
// target line.
func TestBootTargets(t *testing.T) {
	runs := []bootRun{
		{server: "dnsmasq", firmware: lab.BIOS, at: map[string]float64{"marker": 6.5}},
		{server: "dnsmasq", firmware: lab.BIOS, at: map[string]float64{"marker": 6.6}},
		{server: "dnsmasq", firmware: lab.BIOS, at: map[string]float64{"marker": 9}},
		{server: "moobi", firmware: lab.BIOS, at: map[string]float64{"running": 11.9}},
		{server: "moobi", firmware: lab.BIOS, at: map[string]float64{"running": 12.3}},
		{server: "moobi", firmware: lab.BIOS, at: map[string]float64{"running": 30}},
		{server: "moobi", firmware: lab.UEFI, at: map[string]float64{"running": 20}},
	}
	// 125,000,000 bytes take 1 s at 1 Gbit/s: the BIOS goal is 6.6 + 1 + 5.
	ts := bootTargets([]lab.Firmware{lab.BIOS, lab.UEFI}, runs, 125_000_000)
	if len(ts) != 1 {
		t.Fatalf("%d targets, want 1 (UEFI has no reference boot): %+v", len(ts), ts)
	}
	if got := ts[0]; got.moobi != "12.30 s" || got.ref != "12.60 s" || !got.pass || !strings.Contains(got.what, "BIOS") {
		t.Errorf("BIOS target %+v, want moobi 12.30 s against 12.60 s, pass", got)
	}
	runs[3].at["running"], runs[4].at["running"] = 12.7, 12.8
	if got := bootTargets([]lab.Firmware{lab.BIOS}, runs, 125_000_000)[0]; got.pass || got.moobi != "12.80 s" {
		t.Errorf("a median past the goal: %+v, want a failure at 12.80 s", got)
	}
}

// TestConsoleMilestonesStaged: a node client that loads its network drivers
// first has both module milestones, each at its own line.
func TestConsoleMilestonesStaged(t *testing.T) {
	at := func(s string) time.Time { return mustTime(t, "2026-12-05T00:00:0"+s+"Z") }
	lines := []stampedLine{
		{at("1"), `time=... level=INFO msg="network modules loaded" count=8 seconds=0.72`},
		{at("2"), `time=... level=INFO msg="boot config verified" image=web`},
		{at("3"), `time=... level=INFO msg="kernel modules loaded" count=17 seconds=1.81`},
	}
	got := consoleMilestones(lines, moobiConsoleMarkers)
	want := map[string]time.Time{"modules": at("1"), "config": at("2"), "modules-all": at("3")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("consoleMilestones (-want +got):\n%s", diff)
	}
}
