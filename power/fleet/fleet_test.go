package fleet

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"moobi/inventory"
	"moobi/power"
)

// fake is a controller whose every call takes delay, then fails with err.
type fake struct {
	delay   time.Duration
	err     error
	running *atomic.Int32
	most    *atomic.Int32
}

func (f *fake) call(ctx context.Context) error {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.most.Load()
		if n <= m || f.most.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-time.After(f.delay):
		return f.err
	case <-ctx.Done():
		// A library that ignores its context: Do must still return in time.
		time.Sleep(time.Hour)
		return ctx.Err()
	}
}
func (f *fake) Status(ctx context.Context) (power.State, error) {
	if err := f.call(ctx); err != nil {
		return power.Unknown, err
	}
	return power.On, nil
}
func (f *fake) On(ctx context.Context) error    { return f.call(ctx) }
func (f *fake) Off(ctx context.Context) error   { return f.call(ctx) }
func (f *fake) Cycle(ctx context.Context) error { return f.call(ctx) }
func (f *fake) PXE(ctx context.Context) error   { return f.call(ctx) }

func TestRun(t *testing.T) {
	inv := &inventory.Inventory{Hosts: map[string]*inventory.Host{}}
	for _, n := range []string{"a1", "a2", "a3", "a4", "auth", "dead", "nobmc"} {
		h := &inventory.Host{Name: n, Profile: "web"}
		if n != "nobmc" {
			h.BMC = &inventory.BMC{Type: "ipmi", Address: n}
		}
		inv.Hosts[n] = h
	}
	var running, most atomic.Int32
	r := &Runner{
		Inventory: func() *inventory.Inventory { return inv },
		Parallel:  2,
		Open: func(b *inventory.BMC) (power.Controller, error) {
			f := &fake{delay: 50 * time.Millisecond, running: &running, most: &most}
			switch b.Address {
			case "auth":
				f.err = power.ErrAuth
			case "dead":
				f.delay = time.Hour
			}
			return f, nil
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	res, err := r.Run(ctx, power.ActionOn, []string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v with a BMC that never answers and a 2 s context", d)
	}
	if m := most.Load(); m > 2 {
		t.Errorf("%d BMCs driven at once, want at most 2", m)
	}
	got := map[string]Result{}
	for _, x := range res {
		got[x.Host] = x
	}
	if len(res) != 6 {
		t.Fatalf("%d results, want 6 (nobmc has no BMC): %+v", len(res), res)
	}
	for _, n := range []string{"a1", "a2", "a3", "a4"} {
		if !got[n].OK || got[n].State != power.On {
			t.Errorf("%s: %+v, want ok and on", n, got[n])
		}
	}
	if x := got["auth"]; x.OK || x.Kind != "auth" || !strings.Contains(x.Error, "refused the user name or password") {
		t.Errorf("auth: %+v", x)
	}
	if x := got["dead"]; x.OK || x.Kind != "unreachable" || !strings.Contains(x.Error, "did not answer") {
		t.Errorf("dead: %+v", x)
	}
	if _, err := r.Run(ctx, power.ActionOn, []string{"nobmc"}); err == nil || !strings.Contains(err.Error(), "has no bmc") {
		t.Errorf("Run(nobmc): %v", err)
	}
}
