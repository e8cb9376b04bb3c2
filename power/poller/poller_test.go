package poller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/inventory"
	"moobi/power"
)

// fakeBMC is a power.Controller whose answer the test sets; a hang
// answers only when the context ends.
type fakeBMC struct {
	state power.State
	err   error
	hang  bool
	calls *atomic.Int32
	// busy and peak count the reads running at once, over every fake.
	busy, peak *atomic.Int32
}

func (f *fakeBMC) Status(ctx context.Context) (power.State, error) {
	f.calls.Add(1)
	n := f.busy.Add(1)
	defer f.busy.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if f.hang {
		<-ctx.Done()
		return power.Unknown, ctx.Err()
	}
	// Long enough for reads to overlap when the bound lets them.
	time.Sleep(20 * time.Millisecond)
	return f.state, f.err
}
func (f *fakeBMC) On(context.Context) error    { return fmt.Errorf("not in a status poll") }
func (f *fakeBMC) Off(context.Context) error   { return fmt.Errorf("not in a status poll") }
func (f *fakeBMC) Cycle(context.Context) error { return fmt.Errorf("not in a status poll") }
func (f *fakeBMC) PXE(context.Context) error   { return fmt.Errorf("not in a status poll") }

// inventoryWith parses a hosts.yaml whose hosts named in bmcs have a BMC
// at that address (one password file for all), and one host, nobmc,
// without.
func inventoryWith(t *testing.T, dir string, bmcs []string) *inventory.Inventory {
	t.Helper()
	pw := filepath.Join(dir, "bmc.pw")
	if err := os.WriteFile(pw, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var y strings.Builder
	y.WriteString("appliance:\n  interface: lo\nprofiles:\n  rescue:\n    kernel: vmlinuz\n    cmdline: console=ttyS0\nhosts:\n")
	y.WriteString("  nobmc:\n    mac: 52:54:00:00:00:ff\n    profile: rescue\n")
	for i, name := range bmcs {
		fmt.Fprintf(&y, "  %s:\n    mac: 52:54:00:00:00:%02x\n    profile: rescue\n    bmc:\n      type: ipmi\n      address: 10.0.0.%d\n      user: admin\n      password_file: %s\n", name, i+1, i+1, pw)
	}
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("MZ"), 0o644)
	file := filepath.Join(dir, "hosts.yaml")
	inv, err := inventory.Parse(file, []byte(y.String()))
	if err != nil {
		t.Fatalf("hosts.yaml: %v\n%s", err, y.String())
	}
	return inv
}

// TestPoll polls five BMCs (on, off, a refused password, a BMC that
// fails, one that never answers) with at most two at a time, and checks
// each host's reading, the counts, the bound on reads at once and on the
// hung read's time, then a second round after changes.
func TestPoll(t *testing.T) {
	dir := t.TempDir()
	hosts := []string{"n-on", "n-off", "n-auth", "n-fail", "n-hang"}
	var inv atomic.Pointer[inventory.Inventory]
	inv.Store(inventoryWith(t, dir, hosts))
	var calls, busy, peak atomic.Int32
	var mu sync.Mutex
	bmcs := map[string]*fakeBMC{ // by BMC address
		"10.0.0.1": {state: power.On},
		"10.0.0.2": {state: power.Off},
		"10.0.0.3": {err: fmt.Errorf("open session: %w", power.ErrAuth)},
		"10.0.0.4": {err: fmt.Errorf("get chassis status: completion code 0xc1")},
		"10.0.0.5": {hang: true},
	}
	for _, b := range bmcs {
		b.calls, b.busy, b.peak = &calls, &busy, &peak
	}
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	clock := t0
	p := &Poller{
		Inventory: inv.Load,
		Parallel:  2,
		Timeout:   300 * time.Millisecond,
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return clock
		},
		Open: func(b *inventory.BMC) (power.Controller, error) {
			mu.Lock()
			defer mu.Unlock()
			return bmcs[b.Address], nil
		},
	}
	before, gen0 := p.Readings()
	for _, h := range hosts {
		if before[h] != (power.Reading{State: power.Unknown}) {
			t.Errorf("%s before any poll: %+v, want unknown with no time", h, before[h])
		}
	}
	if _, ok := before["nobmc"]; ok {
		t.Error("a host without a BMC has a reading")
	}

	start := time.Now()
	p.Poll(context.Background())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a round with a BMC that never answers took %v; want it bounded by the 300 ms timeout", took)
	}
	if calls.Load() != 5 {
		t.Errorf("%d reads for 5 BMCs", calls.Load())
	}
	if peak.Load() > 2 || peak.Load() < 2 {
		t.Errorf("%d reads at once, want the bound, 2", peak.Load())
	}
	got, gen1 := p.Readings()
	want := map[string]power.Reading{
		"n-on":   {State: power.On, Checked: t0},
		"n-off":  {State: power.Off, Checked: t0},
		"n-auth": {State: power.Unknown, Error: "auth", ErrorTime: t0},
		"n-fail": {State: power.Unknown, Error: "failed", ErrorTime: t0},
		"n-hang": {State: power.Unknown, Error: "unreachable", ErrorTime: t0},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("readings after the first round (-want +got):\n%s", d)
	}
	if gen1 == gen0 {
		t.Error("the generation did not change with the first readings")
	}
	if d := cmp.Diff(map[string]int{"on": 1, "off": 1, "unknown": 3}, p.Counts()); d != "" {
		t.Errorf("counts (-want +got):\n%s", d)
	}

	// Second round: the auth failure is fixed, the on host went off; a
	// round that changes nothing keeps the generation.
	mu.Lock()
	clock = t0.Add(time.Minute)
	bmcs["10.0.0.3"].err = nil
	bmcs["10.0.0.3"].state = power.On
	bmcs["10.0.0.1"].state = power.Off
	mu.Unlock()
	p.Poll(context.Background())
	got, gen2 := p.Readings()
	t1 := t0.Add(time.Minute)
	want["n-on"] = power.Reading{State: power.Off, Checked: t1}
	want["n-off"] = power.Reading{State: power.Off, Checked: t1}
	want["n-auth"] = power.Reading{State: power.On, Checked: t1, Error: "auth", ErrorTime: t0}
	want["n-fail"] = power.Reading{State: power.Unknown, Error: "failed", ErrorTime: t1}
	want["n-hang"] = power.Reading{State: power.Unknown, Error: "unreachable", ErrorTime: t1}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("readings after the second round (-want +got):\n%s", d)
	}
	if got["n-auth"].Failing() || !got["n-fail"].Failing() {
		t.Errorf("Failing: recovered host %v, failing host %v", got["n-auth"].Failing(), got["n-fail"].Failing())
	}
	if gen2 == gen1 {
		t.Error("the generation did not change with new states")
	}
	mu.Lock()
	clock = t0.Add(2 * time.Minute)
	mu.Unlock()
	p.Poll(context.Background())
	if _, gen3 := p.Readings(); gen3 != gen2 {
		t.Error("a round that changed no state changed the generation")
	}

	// A host taken out of hosts.yaml is forgotten.
	inv.Store(inventoryWith(t, dir, hosts[:2]))
	p.Poll(context.Background())
	got, _ = p.Readings()
	if len(got) != 2 || got["n-on"].State != power.Off || got["n-off"].State != power.Off {
		t.Errorf("after removing three hosts: %+v", got)
	}
}

// TestRunStops checks that Run polls at once and returns when its context
// ends, also in the middle of a read.
func TestRunStops(t *testing.T) {
	var calls, busy, peak atomic.Int32
	var inv atomic.Pointer[inventory.Inventory]
	inv.Store(inventoryWith(t, t.TempDir(), []string{"a"}))
	p := &Poller{
		Inventory: inv.Load,
		Interval:  time.Hour,
		Timeout:   time.Hour,
		Open: func(*inventory.BMC) (power.Controller, error) {
			return &fakeBMC{hang: true, calls: &calls, busy: &busy, peak: &peak}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if calls.Load() != 1 {
		t.Fatalf("Run made %d reads before its first interval, want 1", calls.Load())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if rs, _ := p.Readings(); rs["a"].Error != "" {
		t.Errorf("a read cut short by the poller's own stop was recorded as a failure: %+v", rs["a"])
	}
}

// TestRunPollsAfterReload checks that a reload that adds a BMC host is
// polled at once, not an Interval later.
func TestRunPollsAfterReload(t *testing.T) {
	var calls, busy, peak atomic.Int32
	var inv atomic.Pointer[inventory.Inventory]
	inv.Store(inventoryWith(t, t.TempDir(), []string{"a"}))
	p := &Poller{
		Inventory: inv.Load,
		Interval:  time.Hour,
		Open: func(*inventory.BMC) (power.Controller, error) {
			return &fakeBMC{state: power.On, calls: &calls, busy: &busy, peak: &peak}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	wait := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(3 * reloadCheck)
		for calls.Load() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if calls.Load() != n {
			t.Fatalf("%d reads, want %d", calls.Load(), n)
		}
	}
	wait(1)
	inv.Store(inventoryWith(t, t.TempDir(), []string{"a", "b"}))
	wait(3)
	deadline := time.Now().Add(time.Second)
	rs, _ := p.Readings()
	for rs["b"].State != power.On && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		rs, _ = p.Readings()
	}
	if rs["b"].State != power.On {
		t.Errorf("the new host b: %+v, want on", rs["b"])
	}
}
