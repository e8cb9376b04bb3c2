package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCurrentDue(t *testing.T) {
	tests := []struct {
		name    string
		pending bool
		tried   time.Time
		want    bool
	}{
		{"nothing pending", false, time.Time{}, false},
		{"pending, never tried", true, time.Time{}, true},
		{"pending, tried just now", true, t0.Add(-time.Second), false},
		{"pending, tried CurrentRetry ago", true, t0.Add(-CurrentRetry), true},
		{"done, tried long ago", false, t0.Add(-time.Hour), false},
	}
	for _, tc := range tests {
		r := Rollout{State: Succeeded, CurrentPending: tc.pending, CurrentTried: tc.tried}
		if got := CurrentDue(r, t0); got != tc.want {
			t.Errorf("%s: CurrentDue %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMadeCurrent(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantPending bool
		wantError   string
		wantReason  string
	}{
		{"done", nil, false, "", "v2 made current"},
		{"failed: tried again", errors.New("disk full"), true, "disk full", "making v2 current failed (tried again every 30s): disk full"},
		{"version pruned: given up", fmt.Errorf("version v2 is no longer kept: %w", ErrNoVersion), false, "no longer kept", "v2 was not made current"},
	}
	for _, tc := range tests {
		r := Rollout{ID: "r", Image: "web", Version: "v2", State: Succeeded, CurrentPending: true, CurrentError: "earlier"}
		got := MadeCurrent(r, tc.err, t0)
		if got.CurrentPending != tc.wantPending || !strings.Contains(got.CurrentError, tc.wantError) || (tc.wantError == "") != (got.CurrentError == "") ||
			!strings.Contains(got.Reason, tc.wantReason) || !got.CurrentTried.Equal(t0) {
			t.Errorf("%s: pending %v, error %q, reason %q, tried %v; want pending %v, error %q, reason with %q",
				tc.name, got.CurrentPending, got.CurrentError, got.Reason, got.CurrentTried, tc.wantPending, tc.wantError, tc.wantReason)
		}
		if !r.CurrentPending || r.CurrentError != "earlier" {
			t.Errorf("%s: MadeCurrent modified its argument", tc.name)
		}
	}
}

// runToSuccess starts a --make-current rollout of r1-n1 to v2 and steps it
// until it succeeded.
func runToSuccess(t *testing.T, m *Runner, site *fakeSite) Rollout {
	t.Helper()
	r, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r1-n1"}, Options: Options{MakeCurrent: true}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Tick(context.Background())
		site.advance(time.Second)
	}
	got, _ := m.Get(r.ID)
	if got.State != Succeeded {
		t.Fatalf("state %s (%s), want succeeded", got.State, got.Reason)
	}
	return got
}

// A failed switch of current is shown on the rollout, kept on disk and
// tried again; after a restart too.
func TestRunnerMakeCurrentIsTriedAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{}, setFail: 2}
	m := newSite(t, path, site)
	r := runToSuccess(t, m, site)
	if site.current != "v1" || !r.CurrentPending || !strings.Contains(r.CurrentError, "input/output error") ||
		!strings.Contains(r.Reason, "making v2 current failed") {
		t.Fatalf("after a failed switch: current %s, rollout pending %v, error %q, reason %q", site.current, r.CurrentPending, r.CurrentError, r.Reason)
	}
	if f, _ := Load(path); !f.Rollouts[r.ID].CurrentPending {
		t.Fatal("the pending switch is not in the state file")
	}
	sent := site.setSent
	m.Tick(context.Background())
	if site.setSent != sent {
		t.Errorf("tried again %v after a failure, want %v later", time.Second, CurrentRetry)
	}
	site.advance(CurrentRetry)
	m.Tick(context.Background()) // fails again (setFail 2)
	if site.setSent != sent+1 || site.current != "v1" {
		t.Fatalf("after %v: %d tries, current %s", CurrentRetry, site.setSent, site.current)
	}
	// The appliance restarts: the new runner tries at its first step.
	m2 := newSite(t, path, site)
	m2.Tick(context.Background())
	got, _ := m2.Get(r.ID)
	if site.current != "v2" || got.CurrentPending || got.CurrentError != "" || got.Reason != "v2 made current" {
		t.Fatalf("after a restart: current %s, pending %v, error %q, reason %q", site.current, got.CurrentPending, got.CurrentError, got.Reason)
	}
	if _, ok := m2.Pin("r1-n1"); ok {
		t.Error("the pin to the new current version stayed")
	}
	if p, ok := m2.Pin("r2-n1"); !ok || p.Version != "v1" {
		t.Errorf("r2-n1 (outside the rollout) pin %+v %v, want v1", p, ok)
	}
	if f, _ := Load(path); f.Rollouts[r.ID].CurrentPending {
		t.Error("the state file still says pending")
	}
	site.advance(time.Hour)
	m2.Tick(context.Background())
	if site.setSent != sent+2 {
		t.Errorf("%d switches after it was done, want none", site.setSent-sent-2)
	}
}

// The appliance stopped after the success was saved and the switch was
// made, before the intent was cleared: the next start finishes without
// switching again.
func TestRunnerMakeCurrentAfterTheSwitch(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{}, setFail: 1}
	m := newSite(t, path, site)
	r := runToSuccess(t, m, site)
	site.current = "v2" // switched by hand, or before a crash
	sent := site.setSent
	m2 := newSite(t, path, site)
	m2.Tick(context.Background())
	got, _ := m2.Get(r.ID)
	if got.CurrentPending || site.setSent != sent {
		t.Errorf("pending %v, %d more switches; want done without one", got.CurrentPending, site.setSent-sent)
	}
	if _, ok := m2.Pin("r1-n1"); ok {
		t.Error("the pin to the new current version stayed")
	}
}

// breakDir makes saves into dir fail (a file where the folder should be;
// permissions do not stop root) until the returned func mends it.
func breakDir(t *testing.T, dir string) func() {
	t.Helper()
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir+".away", dir); err != nil {
			t.Fatal(err)
		}
	}
}

// A step whose save fails changes nothing: no pin is served that the
// state file lacks, no host is power-cycled; the next step does it.
func TestRunnerFailedSaveKeepsNoPins(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, FileName)
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{}}
	m := newSite(t, path, site)
	r, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r1-n1"}})
	if err != nil {
		t.Fatal(err)
	}
	mend := breakDir(t, dir)
	m.Tick(context.Background())
	if p, ok := m.Pin("r1-n1"); ok {
		t.Errorf("pin %+v served after its save failed", p)
	}
	if got, _ := m.Get(r.ID); states(got)["r1-n1"] != Waiting || len(site.powered) != 0 {
		t.Errorf("after a failed save: hosts %v, powered %v; want r1-n1 waiting, none", states(got), site.powered)
	}
	if _, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r2-n1"}}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("start with the state file unwritable: %v, want an error naming %s", err, path)
	}
	mend()
	m.Tick(context.Background())
	if p, ok := m.Pin("r1-n1"); !ok || p.Version != "v2" || len(site.powered) != 1 {
		t.Errorf("after the mend: pin %+v %v, powered %v", p, ok, site.powered)
	}
	if f, _ := Load(path); f.Pins["r1-n1"].Version != "v2" {
		t.Errorf("the pin is not on disk: %+v", f.Pins)
	}
}

// A switch of current whose final save fails stays pending (here and on
// disk) and is finished by a later step without switching again.
func TestRunnerMakeCurrentFailedSave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, FileName)
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{}, setFail: 1}
	m := newSite(t, path, site)
	r := runToSuccess(t, m, site) // the switch failed once: pending
	// Hosts outside the rollout are held on v1 now; the next try switches,
	// then cannot save.
	site.advance(CurrentRetry)
	mend := breakDir(t, dir)
	m.Tick(context.Background())
	got, _ := m.Get(r.ID)
	if site.current != "v2" || !got.CurrentPending {
		t.Fatalf("current %s, pending %v; want v2 switched, the rollout still pending", site.current, got.CurrentPending)
	}
	if _, ok := m.Pin("r1-n1"); !ok {
		t.Error("the pins changed though the state file was not written")
	}
	mend()
	sent := site.setSent
	m.Tick(context.Background())
	got, _ = m.Get(r.ID)
	if got.CurrentPending || site.setSent != sent {
		t.Errorf("pending %v, %d more switches; want done without one", got.CurrentPending, site.setSent-sent)
	}
	if f, _ := Load(path); f.Rollouts[r.ID].CurrentPending || f.Pins["r1-n1"].Version != "" {
		t.Errorf("state file: pending %v, r1-n1 pin %+v", f.Rollouts[r.ID].CurrentPending, f.Pins["r1-n1"])
	}
}
