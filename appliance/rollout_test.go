package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"moobi/bootserver/adminauth"
	"moobi/bootserver/httpd"
	"moobi/inventory"
	"moobi/nodes"
	"moobi/power"
	"moobi/rollout"
)

// site answers for three hosts of image web (v1 current, v2 staged)
// whose nodes run v1; power does nothing.
type site struct{}

func (site) PXE(_ context.Context, hosts []string) map[string]error {
	out := map[string]error{}
	for _, h := range hosts {
		out[h] = nil
	}
	return out
}

func (site) Observe() map[string]rollout.Observation {
	out := map[string]rollout.Observation{}
	for _, h := range []string{"rack1-node01", "rack1-node02", "rack2-node01"} {
		out[h] = rollout.Observation{State: "running", Image: "web", Version: "v1", BootStarted: time.Now().Add(-time.Hour)}
	}
	return out
}

func (site) Versions(string) (string, []string, error) { return "v1", []string{"v1", "v2"}, nil }
func (site) SetCurrent(string, string) error           { return nil }

// rolloutAppliance serves /v1/rollouts over a real rollout runner; it
// returns the server's URL, the admin token file and the runner (not
// running: the test steps it).
func rolloutAppliance(t *testing.T) (string, string, *rollout.Runner) {
	t.Helper()
	dir := t.TempDir()
	tokPath := adminauth.Path(dir)
	tok, _, err := adminauth.LoadOrCreate(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	ro := &rollout.Runner{Path: filepath.Join(dir, "state", rollout.FileName), Power: site{}, Nodes: site{}, Catalog: site{},
		Inventory: func() ([]power.Host, map[string]string) {
			var hs []power.Host
			im := map[string]string{}
			for _, h := range []string{"rack1-node01", "rack1-node02", "rack2-node01"} {
				hs = append(hs, power.Host{Name: h, Profile: "web", HasBMC: true})
				im[h] = "web"
			}
			return hs, im
		},
		Log: slog.New(slog.DiscardHandler)}
	if err := ro.Load(); err != nil {
		t.Fatal(err)
	}
	guard := &adminauth.Guard{Token: tok}
	s := &httpd.Server{Inventory: func() *inventory.Inventory { return &inventory.Inventory{} }, Log: slog.New(slog.DiscardHandler),
		Rollouts: ro, Admin: guard.Wrap, Nodes: nodes.New()}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, tokPath, ro
}

func TestRolloutCommand(t *testing.T) {
	url, tok, ro := rolloutAppliance(t)
	run := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--server", url, "--token-file", tok)
		if code := rolloutCmd(args, &out, &errb); code != wantCode {
			t.Fatalf("moobi rollout %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	out := run(0, "start", "--dry-run", "--version", "v2", "--batch", "2", "web", "rack1-*", "rack2-node01")
	for _, want := range []string{"image web to v2, 3 hosts in 2 batches of 2", "1      rack1-node01  v1 -> v2", "2      rack2-node01  v1 -> v2", "dry run: nothing changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run does not say %q:\n%s", want, out)
		}
	}
	if out := run(0, "status"); !strings.Contains(out, "no rollouts") {
		t.Errorf("a dry run stored a rollout:\n%s", out)
	}
	out = run(0, "start", "--version", "v2", "web", "rack1-*")
	id := strings.Fields(out[strings.Index(out, "rollout ")+len("rollout "):])[0]
	id = strings.TrimSuffix(id, ":")
	if !strings.HasPrefix(id, "web-") || !strings.Contains(out, "started; follow it with: moobi rollout status "+id) {
		t.Fatalf("start:\n%s", out)
	}
	if out := run(1, "start", "--version", "v2", "web", "rack1-node02"); !strings.Contains(out, "409 Conflict") || !strings.Contains(out, "rack1-node02 (rollout "+id+", running)") {
		t.Errorf("overlapping start:\n%s", out)
	}
	if out := run(1, "start", "--version", "v9", "web", "all"); !strings.Contains(out, `has no version "v9"`) {
		t.Errorf("unknown version:\n%s", out)
	}
	if out := run(0, "status"); !strings.Contains(out, id) || !strings.Contains(out, "running") || !strings.Contains(out, "0/2 done") {
		t.Errorf("status:\n%s", out)
	}
	if out := run(0, "pins"); !strings.Contains(out, "no pins") {
		t.Errorf("pins before any step:\n%s", out)
	}
	ro.Tick(context.Background()) // pins rack1-node01 to v2 and powers it
	if out := run(0, "pins"); !regexp.MustCompile(`(?m)^HOST +IMAGE +VERSION +ROLLOUT +AGE\nrack1-node01 +web +v2 +` + id + ` +\d`).MatchString(out) {
		t.Errorf("pins:\n%s", out)
	}
	if out := run(1, "unpin", "rack1-node01"); !strings.Contains(out, "409 Conflict") || !strings.Contains(out, "rack1-node01 (rollout "+id+", running)") {
		t.Errorf("unpin of a host of a running rollout:\n%s", out)
	}
	if out := run(1, "unpin", "rack2-node01"); !strings.Contains(out, "400") || !strings.Contains(out, "no pin for rack2-node01") {
		t.Errorf("unpin of a host without a pin:\n%s", out)
	}
	if out := run(0, "pause", id); !strings.Contains(out, "paused") {
		t.Errorf("pause:\n%s", out)
	}
	if out := run(1, "pause", id); !strings.Contains(out, "409") {
		t.Errorf("pause twice:\n%s", out)
	}
	run(0, "resume", id)
	if out := run(0, "abort", id); !strings.Contains(out, "aborted") || !strings.Contains(out, "rack1-node01") {
		t.Errorf("abort:\n%s", out)
	}
	if out := run(0, "unpin", "all"); !strings.Contains(out, "unpinned rack1-node01 (was web v2)") {
		t.Errorf("unpin all after the abort:\n%s", out)
	}
	if out := run(0, "pins"); !strings.Contains(out, "no pins") {
		t.Errorf("pins after unpin all:\n%s", out)
	}
	run(2, "unpin")
	if out := run(1, "status", "nope"); !strings.Contains(out, "404") {
		t.Errorf("status of an unknown rollout:\n%s", out)
	}
	run(2, "frobnicate")
	run(2, "start", "web")
}

// moobi status ends with a line per active rollout and its batches.
func TestStatusShowsRollouts(t *testing.T) {
	url, tok, _ := rolloutAppliance(t)
	var out, errb bytes.Buffer
	if code := rolloutCmd([]string{"start", "--server", url, "--token-file", tok, "--version", "v2", "web", "all"}, &out, &errb); code != 0 {
		t.Fatalf("start: %d %s", code, errb.String())
	}
	out.Reset()
	if code := status([]string{"--server", url, "--token-file", tok}, &out, &errb); code != 0 {
		t.Fatalf("status: %d %s", code, errb.String())
	}
	if want := "web to v2, running, batch 1/3, 0/3 done, 0 failed (max 0) [0/1 0/1 0/1]"; !strings.Contains(out.String(), want) {
		t.Errorf("status says:\n%s\nwant %q (stderr %s)", out.String(), want, errb.String())
	}
}

// A rollout whose version could not be made current says so, with the
// error, until it is.
func TestPrintRolloutMakeCurrent(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	r := rollout.Rollout{ID: "web-1", Image: "web", Version: "v2", State: rollout.Succeeded, Options: rollout.Options{MakeCurrent: true}}
	tests := []struct {
		name           string
		pending        bool
		err, want, not string
	}{
		{"pending, not tried", true, "", "make current: v2 not current yet, tried again\n", ""},
		{"pending after a failure", true, "rename: input/output error", "make current: v2 not current yet, tried again (last try 30s ago: rename: input/output error)", ""},
		{"given up", false, "version v2 is no longer kept", "make current: given up: version v2 is no longer kept", ""},
		{"done", false, "", "", "make current"},
	}
	for _, tc := range tests {
		r.CurrentPending, r.CurrentError, r.CurrentTried = tc.pending, tc.err, now.Add(-30*time.Second)
		var b bytes.Buffer
		printRollout(&b, r, now)
		if !strings.Contains(b.String(), tc.want) || tc.not != "" && strings.Contains(b.String(), tc.not) {
			t.Errorf("%s:\n%s\nwant %q", tc.name, b.String(), tc.want)
		}
	}
}
