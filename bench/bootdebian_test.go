package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/lab"
)

// The Debian reference's nginx log: the modules initrd counts as fetched by
// iPXE, the squashfs request is /init's wget.
func TestNginxMilestonesDebian(t *testing.T) {
	t0 := mustTime(t, "2026-12-04T21:00:00Z")
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	reqs := []nginxAccess{
		{start: at(1), end: at(1.1), status: 200, path: "/" + bootScript},
		{start: at(1.2), end: at(2), status: 200, path: "/" + bootKernel},
		{start: at(2), end: at(2.5), status: 200, path: "/" + bootInitrd},
		{start: at(2.5), end: at(3.5), status: 200, path: "/" + bootModulesCpio},
		{start: at(20), end: at(31), status: 200, path: "/" + bootRootfs},
	}
	want := map[string]time.Time{"script": at(1.1), "kernel": at(1.2), "fetched": at(3.5), "wget": at(20), "downloaded": at(31)}
	if diff := cmp.Diff(want, nginxMilestones(reqs, t0)); diff != "" {
		t.Errorf("nginxMilestones (-want +got):\n%s", diff)
	}
}

func TestBootDebianSpan(t *testing.T) {
	ref := bootRun{server: "dnsmasq", end: "target", at: map[string]float64{"init": 10, "wget": 14, "downloaded": 30, "target": 75}}
	moobi := bootRun{server: "moobi", end: "target", at: map[string]float64{"init": 8, "fetching": 20, "verified": 35, "target": 70, "running": 72}}
	for _, tc := range []struct {
		r        bootRun
		from, to string
		want     float64
		ok       bool
	}{
		{ref, "init", "fetching", 4, true},
		{ref, "fetching", "verified", 16, true},
		{ref, "verified", "target", 45, true},
		{ref, "target", "running", 0, false},
		{moobi, "fetching", "verified", 15, true},
		{moobi, "target", "running", 2, true},
	} {
		got, ok := bootDebianSpan(tc.r, tc.from, tc.to)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("%s %s → %s: %v, %v; want %v, %v", tc.r.server, tc.from, tc.to, got, ok, tc.want, tc.ok)
		}
	}
	if ref.done() != 75 || moobi.done() != 70 {
		t.Errorf("done: reference %v, moobi %v; want 75 and 70 (both end on the console's target line)", ref.done(), moobi.done())
	}
}

// The reference /init is valid shell for busybox, fetches the URL it was
// given and switch_roots.
func TestBootDebianInit(t *testing.T) {
	if _, err := os.Stat(lab.BusyboxPath); err != nil {
		t.Skipf("no %s (busybox-static)", lab.BusyboxPath)
	}
	url := "http://10.0.0.1:8080/" + bootRootfs
	init := bootDebianInit(url)
	p := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(p, []byte(init), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(lab.BusyboxPath, "sh", "-n", p).CombinedOutput(); err != nil {
		t.Fatalf("busybox sh -n: %v\n%s", err, out)
	}
	for _, s := range []string{"wget -q -O /" + bootRootfs + " '" + url + "'", "exec switch_root /newroot /sbin/init", bootMarker} {
		if !strings.Contains(init, s) {
			t.Errorf("/init lacks %q:\n%s", s, init)
		}
	}
}
