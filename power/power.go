// Package power switches hosts on and off through their baseboard
// management controllers (BMCs) and makes them network-boot: a small
// Controller interface with one implementation per BMC protocol (power/ipmi,
// power/redfish), the actions operators ask for, and which hosts a target
// such as "rack1-*" names.
package power

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// State is a host's power state as its BMC reports it.
type State string

// Power states.
const (
	On      State = "on"
	Off     State = "off"
	Unknown State = "unknown" // the BMC did not answer, or answered something else
)

// Controller drives one host's BMC. Every call is bounded by its context.
type Controller interface {
	// Status reports whether the host is on.
	Status(ctx context.Context) (State, error)
	// On powers the host on (nothing happens if it is on).
	On(ctx context.Context) error
	// Off cuts the host's power at once (no graceful shutdown).
	Off(ctx context.Context) error
	// Cycle power-cycles a host that is on and powers on one that is off.
	Cycle(ctx context.Context) error
	// PXE makes the host's next boot, only that one, a network boot, then
	// power-cycles it (or powers it on if it is off).
	PXE(ctx context.Context) error
}

// Action is what an operator asks of a host's power.
type Action string

// Actions.
const (
	ActionStatus Action = "status"
	ActionOn     Action = "on"
	ActionOff    Action = "off"
	ActionCycle  Action = "cycle"
	ActionPXE    Action = "pxe"
)

// Actions lists every action, in the order the CLI shows them.
var Actions = []Action{ActionStatus, ActionOn, ActionOff, ActionCycle, ActionPXE}

// ParseAction checks that s names an action.
func ParseAction(s string) (Action, error) {
	for _, a := range Actions {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown power action %q (want status, on, off, cycle or pxe)", s)
}

// ErrAuth marks a BMC that refused the user name or password.
var ErrAuth = errors.New("the BMC refused the user name or password")

// ErrUnreachable marks a BMC that did not answer in time.
var ErrUnreachable = errors.New("the BMC did not answer")

// CallTimeout bounds one action on one BMC, connection included.
const CallTimeout = 15 * time.Second

// Do runs action on c within CallTimeout (or ctx's own deadline, if
// sooner) and returns the power state after it; a context that ends first
// is reported as ErrUnreachable. The state after a successful change is
// read back from the BMC.
func Do(ctx context.Context, c Controller, action Action) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	type result struct {
		st  State
		err error
	}
	done := make(chan result, 1)
	// The BMC libraries do not all stop at the context's end: the call
	// runs apart so that Do returns in time whatever they do.
	go func() {
		st, err := do(ctx, c, action)
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && ctx.Err() != nil && !errors.Is(r.err, ErrAuth) {
			return Unknown, fmt.Errorf("%w within %v: %v", ErrUnreachable, CallTimeout, r.err)
		}
		return r.st, r.err
	case <-ctx.Done():
		return Unknown, fmt.Errorf("%w within %v", ErrUnreachable, CallTimeout)
	}
}

func do(ctx context.Context, c Controller, action Action) (State, error) {
	var err error
	switch action {
	case ActionStatus:
		return c.Status(ctx)
	case ActionOn:
		err = c.On(ctx)
	case ActionOff:
		err = c.Off(ctx)
	case ActionCycle:
		err = c.Cycle(ctx)
	case ActionPXE:
		err = c.PXE(ctx)
	default:
		return Unknown, fmt.Errorf("unknown power action %q", action)
	}
	if err != nil {
		return Unknown, fmt.Errorf("power %s: %w", action, err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return Unknown, fmt.Errorf("power %s done; reading the state back: %w", action, err)
	}
	return st, nil
}

// Reading is what the appliance last learnt of a host's power from its
// BMC, as the node views (/v1/nodes, the dashboard, `moobi status`) show
// it. It never holds the BMC's address, user or password.
type Reading struct {
	// State is the host's power: unknown until its BMC answered, and again
	// after a read that failed.
	State State `json:"state"`
	// Checked is when the BMC last answered.
	Checked time.Time `json:"checked,omitzero"`
	// Error is the kind of the last read that failed ("auth",
	// "unreachable" or "failed") and ErrorTime its time; both stay after
	// the BMC answers again (Checked is then the later).
	Error     string    `json:"error,omitempty"`
	ErrorTime time.Time `json:"error_time,omitzero"`
}

// Failing reports whether the last read of the BMC failed.
func (r Reading) Failing() bool {
	return r.Error != "" && !r.ErrorTime.Before(r.Checked)
}
