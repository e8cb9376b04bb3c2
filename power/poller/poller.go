// Package poller reads the power state of every host that has a BMC in
// hosts.yaml in the background, so that the node views (/v1/nodes, the
// dashboard, `moobi status`) and the metrics show it without logging in to
// a BMC per page load: one status read per host each Interval, at most
// Parallel BMCs at a time, each read bounded by Timeout. It keeps the last
// reading of each host: on, off or unknown, with the kind and time of the
// last failure.
package poller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"moobi/inventory"
	"moobi/power"
	"moobi/power/fleet"
)

// Defaults of Poller's settings.
const (
	DefaultInterval = 60 * time.Second
	DefaultParallel = 4
	DefaultTimeout  = 10 * time.Second
)

// Poller polls the BMCs of the inventory in force. Set its fields before
// Run; it is safe for concurrent use after.
type Poller struct {
	Inventory func() *inventory.Inventory
	// Open makes a host's controller (fleet.Open if nil; tests swap it).
	Open func(*inventory.BMC) (power.Controller, error)
	// Interval between the starts of two rounds (DefaultInterval if 0).
	Interval time.Duration
	// Parallel bounds the BMCs read at once (DefaultParallel if 0).
	Parallel int
	// Timeout bounds one BMC's read, session included (DefaultTimeout if 0).
	Timeout time.Duration
	Log     *slog.Logger
	// Gate, if set, keeps calls to one BMC one at a time (shared with the
	// power actions, fleet.Runner.Gate).
	Gate *power.Gate
	// Now is the clock (time.Now if nil).
	Now func() time.Time

	mu       sync.Mutex
	readings map[string]power.Reading // by host name
	gen      uint64                   // bumped when a reading's state or error changes
}

// reloadCheck is how often Run looks for a new inventory.
const reloadCheck = 2 * time.Second

// Run polls at once, then every Interval and whenever the inventory in
// force changes (a reload may add BMCs), until ctx ends; then it returns
// nil.
func (p *Poller) Run(ctx context.Context) error {
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	check := time.NewTicker(reloadCheck)
	defer check.Stop()
	for {
		polled := p.Inventory()
		p.Poll(ctx)
		for wait := true; wait; {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				wait = false
			case <-check.C:
				wait = p.Inventory() == polled
			}
		}
	}
}

// Poll reads every BMC of the inventory in force once and returns when
// all have answered or timed out. Hosts no longer in the inventory, or
// no longer with a BMC, are forgotten.
func (p *Poller) Poll(ctx context.Context) {
	inv := p.Inventory()
	names := inv.HostsWithBMC()
	p.forget(names)
	par := p.Parallel
	if par <= 0 {
		par = DefaultParallel
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for _, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.read(ctx, inv.Hosts[name])
		}()
	}
	wg.Wait()
}

// read reads one host's power and records it.
func (p *Poller) read(parent context.Context, h *inventory.Host) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	open := p.Open
	if open == nil {
		open = fleet.Open
	}
	leave, err := p.Gate.Enter(ctx, h.BMC.Address)
	if err != nil {
		return // a power action held the BMC all along: it reports the state
	}
	defer leave()
	st := power.Unknown
	c, err := open(h.BMC)
	if err == nil {
		st, err = power.Do(ctx, c, power.ActionStatus)
	}
	if err != nil && parent.Err() != nil {
		return // the poller is stopping: not the BMC's fault
	}
	kind := ""
	if err != nil {
		kind = fleet.Kind(err)
	}
	p.record(h.Name, st, kind, err)
}

// Observe records what a power action on host found (fleet.Result's
// State, and its Kind if it failed), so that the views need not wait for
// the next round to show a host just switched off or on.
func (p *Poller) Observe(host string, st power.State, kind string) {
	var err error
	if kind != "" {
		err = errors.New("power action failed (" + kind + ")")
	}
	p.record(host, st, kind, err)
}

// record stores one read's outcome; a change of state or a new kind of
// failure is logged (the error never holds the password: the BMC
// libraries are given it, and report only the user name).
func (p *Poller) record(name string, st power.State, kind string, err error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	t := now()
	p.mu.Lock()
	if p.readings == nil {
		p.readings = map[string]power.Reading{}
	}
	old, seen := p.readings[name]
	r := old
	if err != nil {
		r.State, r.Error, r.ErrorTime = power.Unknown, kind, t
	} else {
		r.State, r.Checked = st, t
	}
	p.readings[name] = r
	changed := !seen || r.State != old.State || r.Failing() != old.Failing() || r.Error != old.Error
	if changed {
		p.gen++
	}
	p.mu.Unlock()
	if !changed || p.Log == nil {
		return
	}
	if err != nil {
		p.Log.Warn("power state unknown: the BMC read failed", "host", name, "kind", r.Error, "err", err)
	} else {
		p.Log.Info("power state", "host", name, "state", string(st))
	}
}

// forget drops the readings of hosts not in names.
func (p *Poller) forget(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := range p.readings {
		if !keep[n] {
			delete(p.readings, n)
			p.gen++
		}
	}
}

// Readings returns the last reading of every host with a BMC in the
// inventory in force, by host name: a host not read yet is unknown, with
// no time. gen changes whenever a state or a failure changes.
func (p *Poller) Readings() (readings map[string]power.Reading, gen uint64) {
	names := p.Inventory().HostsWithBMC()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]power.Reading, len(names))
	for _, n := range names {
		r, ok := p.readings[n]
		if !ok {
			r = power.Reading{State: power.Unknown}
		}
		out[n] = r
	}
	return out, p.gen
}

// Counts returns how many hosts with a BMC are in each power state, every
// state present (for the metric moobi_power_state).
func (p *Poller) Counts() map[string]int {
	rs, _ := p.Readings()
	out := map[string]int{string(power.On): 0, string(power.Off): 0, string(power.Unknown): 0}
	for _, r := range rs {
		out[string(r.State)]++
	}
	return out
}
