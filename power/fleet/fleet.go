// Package fleet runs one power action on many hosts at once, each through
// the BMC hosts.yaml gives it, a bounded number at a time, and reports one
// result per host: a BMC that fails fails its own host only.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"moobi/inventory"
	"moobi/power"
	"moobi/power/ipmi"
	"moobi/power/redfish"
)

// DefaultParallel bounds the BMCs driven at once.
const DefaultParallel = 16

// Result is what one host's BMC did.
type Result struct {
	Host   string       `json:"host"`
	BMC    string       `json:"bmc"` // type and address, e.g. "ipmi 10.0.0.5"
	Action power.Action `json:"action"`
	// State is the power state after the action ("unknown" on failure).
	State power.State `json:"state"`
	OK    bool        `json:"ok"`
	// Error says what failed; Kind is "auth", "unreachable" or "failed".
	Error   string  `json:"error,omitempty"`
	Kind    string  `json:"kind,omitempty"`
	Seconds float64 `json:"seconds"`
}

// Runner runs power actions on the hosts of the inventory in force.
type Runner struct {
	Inventory func() *inventory.Inventory
	// Parallel bounds the BMCs driven at once, over all Runs together
	// (DefaultParallel if 0).
	Parallel int
	// Open makes a host's controller (Open if nil; tests swap it).
	Open func(*inventory.BMC) (power.Controller, error)
	Log  *slog.Logger
	// Observe, if set, is told of every host's result as it comes (the
	// power poller keeps the states it learns so).
	Observe func(Result)
	// Gate, if set, keeps calls to one BMC one at a time (shared with the
	// power poller).
	Gate *power.Gate

	semOnce sync.Once
	sem     chan struct{} // shared by concurrent Runs: the bound holds overall
}

// Open makes the controller for a BMC of hosts.yaml, reading its password.
func Open(b *inventory.BMC) (power.Controller, error) {
	pw, err := b.Password()
	if err != nil {
		return nil, err
	}
	switch b.Type {
	case inventory.BMCIPMI:
		host, port := b.IPMIHostPort()
		return &ipmi.Controller{Host: host, Port: port, User: b.User, Password: pw}, nil
	case inventory.BMCRedfish:
		return &redfish.Controller{Endpoint: b.RedfishURL(), User: b.User, Password: pw, InsecureTLS: b.InsecureTLS}, nil
	}
	return nil, fmt.Errorf("unknown BMC type %q", b.Type)
}

// Hosts is the target-matching view of an inventory.
func Hosts(inv *inventory.Inventory) []power.Host {
	out := make([]power.Host, 0, len(inv.Hosts))
	for _, h := range inv.Hosts {
		out = append(out, power.Host{Name: h.Name, Profile: h.Profile, HasBMC: h.BMC != nil})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Run does action on every host the targets name (see power.Match) and
// returns their results in host order. The error is for targets that do
// not match; a host whose BMC fails has its own error in its result.
func (r *Runner) Run(ctx context.Context, action power.Action, targets []string) ([]Result, error) {
	inv := r.Inventory()
	names, err := power.Match(Hosts(inv), targets)
	if err != nil {
		return nil, err
	}
	open := r.Open
	if open == nil {
		open = Open
	}
	r.semOnce.Do(func() {
		par := r.Parallel
		if par <= 0 {
			par = DefaultParallel
		}
		r.sem = make(chan struct{}, par)
	})
	sem := r.sem
	results := make([]Result, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := inv.Hosts[name]
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = Result{Host: name, BMC: h.BMC.Type + " " + h.BMC.Address, Action: action, State: power.Unknown,
					Error: "not started: " + ctx.Err().Error(), Kind: "failed"}
				return
			}
			defer func() { <-sem }()
			results[i] = r.one(ctx, h, action, open)
			if r.Observe != nil {
				r.Observe(results[i])
			}
		}()
	}
	wg.Wait()
	return results, nil
}

func (r *Runner) one(ctx context.Context, h *inventory.Host, action power.Action, open func(*inventory.BMC) (power.Controller, error)) Result {
	start := time.Now()
	res := Result{Host: h.Name, BMC: h.BMC.Type + " " + h.BMC.Address, Action: action, State: power.Unknown}
	leave, err := r.Gate.Enter(ctx, h.BMC.Address)
	if err == nil {
		defer leave()
		var c power.Controller
		if c, err = open(h.BMC); err == nil {
			res.State, err = power.Do(ctx, c, action)
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		res.Error, res.Kind = err.Error(), Kind(err)
	} else {
		res.OK = true
	}
	if r.Log != nil {
		log := r.Log.With("host", h.Name, "bmc", res.BMC, "action", string(action), "state", string(res.State), "seconds", res.Seconds)
		if err != nil {
			log.Warn("power action failed", "err", err, "kind", res.Kind)
		} else if action != power.ActionStatus {
			log.Info("power action done")
		}
	}
	return res
}

// Kind sorts a BMC error: "auth", "unreachable" or "failed".
func Kind(err error) string {
	switch {
	case errors.Is(err, power.ErrAuth):
		return "auth"
	case errors.Is(err, power.ErrUnreachable):
		return "unreachable"
	}
	return "failed"
}
