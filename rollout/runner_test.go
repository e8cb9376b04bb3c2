package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"moobi/power"
)

// fakes: a fleet whose nodes boot what they are pinned to when powered,
// a catalog, a clock.
type fakeSite struct {
	mu      sync.Mutex
	now     time.Time
	obs     map[string]Observation
	powered []string
	fail    map[string]bool // power fails: the BMC refuses the password
	flaky   map[string]int  // power fails this many times: the BMC does not answer
	current string
	pins    func(string) (Pin, bool)
	onPower func() // called before PXE answers (a shutdown)
	setFail int    // SetCurrent fails this many times
	setSent int    // SetCurrent calls
}

func (f *fakeSite) PXE(_ context.Context, hosts []string) map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]error{}
	if f.onPower != nil {
		f.onPower()
	}
	for _, h := range hosts {
		f.powered = append(f.powered, h)
		if f.fail[h] {
			out[h] = fmt.Errorf("ipmi %s: %w", h, power.ErrAuth)
			continue
		}
		if f.flaky[h] > 0 {
			f.flaky[h]--
			out[h] = fmt.Errorf("ipmi %s: %w", h, power.ErrUnreachable)
			continue
		}
		out[h] = nil
		// The node boots at once into what the boot config gives it.
		v := f.current
		if p, ok := f.pins(h); ok {
			v = p.Version
		}
		f.obs[h] = Observation{State: "running", Image: "web", Version: v, BootStarted: f.now}
	}
	return out
}

func (f *fakeSite) Observe() map[string]Observation {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Observation{}
	for k, v := range f.obs {
		out[k] = v
	}
	return out
}

func (f *fakeSite) Versions(string) (string, []string, error) {
	return f.current, []string{"v1", "v2"}, nil
}
func (f *fakeSite) SetCurrent(_, v string) error {
	f.setSent++
	if f.setFail > 0 {
		f.setFail--
		return errors.New("rename current: input/output error")
	}
	f.current = v
	return nil
}
func (f *fakeSite) Now() time.Time          { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeSite) advance(d time.Duration) { f.mu.Lock(); f.now = f.now.Add(d); f.mu.Unlock() }

func newSite(t *testing.T, path string, site *fakeSite) *Runner {
	m := &Runner{Path: path, Power: site, Nodes: site, Catalog: site, Now: site.Now,
		Inventory: func() ([]power.Host, map[string]string) {
			e := env()
			return e.Hosts, e.ImageOf
		},
		PowerRetryDelay: time.Millisecond,
		Log:             slog.New(slog.DiscardHandler)}
	site.pins = m.Pin
	if err := m.Load(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRunnerRollsOutAndResumesAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{}}
	m := newSite(t, path, site)
	ctx := context.Background()
	r, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r1-*"}, Options: Options{MakeCurrent: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r1-n3"}}); err == nil {
		t.Fatal("an overlapping rollout started")
	}
	m.Tick(ctx) // powers r1-n1, which boots v2 (its pin)
	site.advance(time.Second)
	if p, ok := m.Pin("r1-n1"); !ok || p.Version != "v2" {
		t.Fatalf("r1-n1 pin %+v %v", p, ok)
	}
	if _, ok := m.Pin("r2-n1"); ok {
		t.Errorf("a host outside the rollout was pinned with v1 still current")
	}
	// The appliance stops here; a new runner reads the state file.
	m2 := newSite(t, path, site)
	for range 5 {
		m2.Tick(ctx)
		site.advance(time.Second)
	}
	got, err := m2.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Succeeded {
		t.Fatalf("state %s (%s), want succeeded; hosts %v", got.State, got.Reason, states(got))
	}
	if want := []string{"r1-n1", "r1-n2", "r1-n3"}; !slices.Equal(site.powered, want) {
		t.Errorf("powered %v, want each host once: %v", site.powered, want)
	}
	if site.current != "v2" {
		t.Errorf("current %s after a make_current rollout, want v2", site.current)
	}
	if _, ok := m2.Pin("r1-n1"); ok {
		t.Errorf("the pin to the new current version stayed")
	}
	if f, _ := Load(path); f.Generation < 4 {
		t.Errorf("generation %d after several writes", f.Generation)
	}
}

func TestRunnerStopsOnPowerFailures(t *testing.T) {
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{"r1-n1": true, "r1-n2": true}}
	m := newSite(t, filepath.Join(t.TempDir(), FileName), site)
	r, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"all"}, Options: Options{BatchSize: 2, MaxFailures: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Tick(context.Background())
		site.advance(time.Second)
	}
	got, _ := m.Get(r.ID)
	if got.State != Failed || len(site.powered) != 2 {
		t.Errorf("state %s, powered %v; want failed after the first batch", got.State, site.powered)
	}
	// Pause and abort answer ErrState now; a new rollout of the hosts starts.
	if _, err := m.Control(r.ID, Pause); !errors.Is(err, ErrState) {
		t.Errorf("pause of a failed rollout: %v", err)
	}
	if _, err := m.Control("nope", Abort); !errors.Is(err, ErrNotFound) {
		t.Errorf("abort of an unknown rollout: %v", err)
	}
	if _, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r1-n1"}}); err != nil {
		t.Errorf("a rollout of hosts of a failed one: %v", err)
	}
}

// A BMC that misses a call or two costs its host nothing; one that misses
// every try fails the host, and refused credentials are not tried again.
func TestRunnerRetriesPowerActions(t *testing.T) {
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1",
		flaky: map[string]int{"r1-n1": 2, "r1-n2": 3}, fail: map[string]bool{"r2-n1": true}}
	m := newSite(t, filepath.Join(t.TempDir(), FileName), site)
	r, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r1-n1", "r1-n2", "r2-n1"}, Options: Options{BatchSize: 3, MaxFailures: 3}})
	if err != nil {
		t.Fatal(err)
	}
	m.Tick(context.Background())
	got, _ := m.Get(r.ID)
	st := states(got)
	if st["r1-n1"] == HostFailed || st["r1-n2"] != HostFailed || st["r2-n1"] != HostFailed {
		t.Errorf("hosts %v; want r1-n1 through on its third try, r1-n2 (3 misses) and r2-n1 (refused) failed", st)
	}
	count := map[string]int{}
	for _, h := range site.powered {
		count[h]++
	}
	if count["r1-n1"] != 3 || count["r1-n2"] != 3 || count["r2-n1"] != 1 {
		t.Errorf("power calls %v; want 3, 3 and 1", count)
	}
}

// A power call the appliance's shutdown cut short fails no host: it stays
// powering, for the next start to check.
func TestRunnerShutdownFailsNoHost(t *testing.T) {
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{"r1-n1": true}}
	m := newSite(t, filepath.Join(t.TempDir(), FileName), site)
	r, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r1-n1"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	site.onPower = cancel
	m.Tick(ctx)
	got, _ := m.Get(r.ID)
	if got.State != Running || states(got)["r1-n1"] != Powering {
		t.Errorf("after a cut-short power call: %s, hosts %v; want running, r1-n1 powering", got.State, states(got))
	}
}

// --make-current on a rollout of part of the image's hosts: the others
// are held on the old current version first.
func TestRunnerMakeCurrentHoldsTheOthers(t *testing.T) {
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{}}
	m := newSite(t, filepath.Join(t.TempDir(), FileName), site)
	r, err := m.Start(Request{Image: "web", Version: "v2", Targets: []string{"r1-n1"}, Options: Options{MakeCurrent: true}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Tick(context.Background())
		site.advance(time.Second)
	}
	if got, _ := m.Get(r.ID); got.State != Succeeded || site.current != "v2" {
		t.Fatalf("state %s, current %s; want succeeded, v2", got.State, site.current)
	}
	for _, h := range []string{"r1-n2", "r1-n3", "r2-n1", "r2-n2"} {
		if p, ok := m.Pin(h); !ok || p.Version != "v1" {
			t.Errorf("%s pin %+v %v, want v1", h, p, ok)
		}
	}
	if _, ok := m.Pin("db1"); ok {
		t.Error("a host of another image was pinned")
	}
	if _, ok := m.Pin("r1-n1"); ok {
		t.Error("the moved host keeps a pin to what is now current")
	}
}
