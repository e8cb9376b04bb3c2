package rollout

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"moobi/nodeapi"
)

// Observation is what the appliance last heard of a host's node.
type Observation struct {
	State   string // node state (nodeapi.State*); "" or "unknown": never seen
	Image   string
	Version string
	Reason  string
	// BootStarted is when the node's current boot began.
	BootStarted time.Time
}

// Actions are what a Step asks the runner to do.
type Actions struct {
	// Power lists hosts to pin to the rollout's version and then power-cycle
	// into a network boot; their results go to PowerDone.
	Power []string
	// MakeCurrent: make the rollout's version the image's current one
	// (the rollout returned carries CurrentPending, for the runner's
	// MakeCurrent to act on).
	MakeCurrent bool
}

// ErrState marks a control (pause, resume, abort) the rollout's state does
// not allow.
var ErrState = errors.New("not allowed in the rollout's state")

// runs tells whether o shows the node up on image at version; degraded
// counts when accept is set.
func runs(o Observation, image, version string, accept bool) bool {
	if o.Image != image || o.Version != version {
		return false
	}
	return o.State == nodeapi.StateRunning || accept && o.State == nodeapi.StateDegraded
}

// Step advances r given what the nodes report, at time now, and returns
// the new rollout and what to do. Nothing happens to a rollout that is not
// running, but a paused one still records hosts of its batch that finish
// booting. Step is pure: r is not modified.
func Step(r Rollout, obs map[string]Observation, now time.Time) (Rollout, Actions) {
	r = r.Clone()
	var act Actions
	if !r.State.Active() {
		r.recount()
		return r, act
	}
	if r.Batch < len(r.Batches) {
		b := &r.Batches[r.Batch]
		for i := range b.Hosts {
			settle(&r, &b.Hosts[i], obs, now)
		}
	}
	r.recount()
	if r.State == Paused || r.overBudget(now) {
		return r, act
	}
	for r.Batch < len(r.Batches) {
		b := &r.Batches[r.Batch]
		if b.Started.IsZero() {
			b.Started, b.Deadline = now, now.Add(time.Duration(r.BatchTimeout))
			r.Updated = now
		}
		for i := range b.Hosts {
			h := &b.Hosts[i]
			switch h.State {
			case Waiting:
				if runs(obs[h.Name], r.Image, r.Version, r.AcceptDegraded) {
					h.State, h.Reason, h.Done = Skipped, "already running "+r.Version, now
				} else {
					h.State, h.Powered = Powering, now
					act.Power = append(act.Power, h.Name)
				}
				r.Updated = now
			case Powering:
				// Left over from before a restart, and not running the
				// target yet (settle): ask again.
				h.Powered = now
				act.Power = append(act.Power, h.Name)
				r.Updated = now
			case Booting:
				if !now.Before(b.Deadline) {
					o := obs[h.Name]
					h.State, h.Done = HostFailed, now
					h.Reason = fmt.Sprintf("timeout: not running %s within the batch timeout %v (node %s, version %q)",
						r.Version, time.Duration(r.BatchTimeout), orUnknown(o.State), o.Version)
					r.Updated = now
				}
			}
		}
		r.recount()
		if r.overBudget(now) || len(act.Power) > 0 || !b.done() {
			return r, act
		}
		b.Finished = now
		r.Batch++
		r.recount()
	}
	r.State, r.Finished, r.Updated = Succeeded, now, now
	act.MakeCurrent = r.MakeCurrent
	r.CurrentPending = r.MakeCurrent
	r.recount()
	return r, act
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (b *Batch) done() bool {
	for _, h := range b.Hosts {
		if !h.State.done() {
			return false
		}
	}
	return true
}

// settle records what the node of h reports: a host booting (or, after a
// restart, one whose power action may have happened) that reached running
// on the target is done; one that booted anything else, or failed, fails.
func settle(r *Rollout, h *Host, obs map[string]Observation, now time.Time) {
	o, seen := obs[h.Name]
	if seen {
		h.NodeState, h.NodeVersion = o.State, o.Version
	}
	switch h.State {
	case Powering:
		if runs(o, r.Image, r.Version, r.AcceptDegraded) {
			h.State, h.Done, r.Updated = HostRunning, now, now
		}
		return
	case Booting:
	default:
		return
	}
	// Only a boot that began after the power action tells anything.
	if !seen || o.BootStarted.IsZero() || o.BootStarted.Before(h.Powered) {
		return
	}
	reason := ""
	switch o.State {
	case nodeapi.StateRunning, nodeapi.StateDegraded:
		switch {
		case o.Image != r.Image || o.Version != r.Version:
			reason = fmt.Sprintf("wrong version: booted %s %s, not %s %s", o.Image, o.Version, r.Image, r.Version)
		case o.State == nodeapi.StateDegraded && !r.AcceptDegraded:
			reason = "degraded: " + o.Reason + " (accept_degraded is off)"
		default:
			h.State, h.Done, h.Reason, r.Updated = HostRunning, now, o.Reason, now
			return
		}
	case nodeapi.StateFailed:
		reason = "node failed: " + o.Reason
	default:
		return
	}
	h.State, h.Done, h.Reason, r.Updated = HostFailed, now, reason, now
}

// overBudget fails r when more hosts failed than it allows.
func (r *Rollout) overBudget(now time.Time) bool {
	if r.Failures <= r.MaxFailures {
		return false
	}
	var names []string
	for _, b := range r.Batches {
		for _, h := range b.Hosts {
			if h.State == HostFailed && len(names) < 5 {
				names = append(names, h.Name+" ("+h.Reason+")")
			}
		}
	}
	more := ""
	if r.Failures > len(names) {
		more = fmt.Sprintf(" and %d more", r.Failures-len(names))
	}
	r.State, r.Finished, r.Updated = Failed, now, now
	r.Reason = fmt.Sprintf("%d hosts failed, more than max_failures %d: %s%s", r.Failures, r.MaxFailures, strings.Join(names, "; "), more)
	return true
}

// PowerDone records the power actions' results (nil: done) of hosts a
// Step put in Powering. Pure: r is not modified.
func PowerDone(r Rollout, results map[string]error, now time.Time) Rollout {
	r = r.Clone()
	for bi := range r.Batches {
		for i := range r.Batches[bi].Hosts {
			h := &r.Batches[bi].Hosts[i]
			err, ok := results[h.Name]
			if !ok || h.State != Powering {
				continue
			}
			if err != nil {
				h.State, h.Done, h.Reason = HostFailed, now, "power: "+err.Error()
			} else {
				h.State = Booting
			}
			r.Updated = now
		}
	}
	r.recount()
	return r
}

// Pause stops r from starting power actions and timing out hosts; hosts
// already booting are still recorded.
func Pause(r Rollout, now time.Time) (Rollout, error) {
	if r.State != Running {
		return r, fmt.Errorf("pause rollout %s: it is %s: %w", r.ID, r.State, ErrState)
	}
	r = r.Clone()
	r.State, r.Updated = Paused, now
	return r, nil
}

// Resume continues a paused r; the current batch gets a full batch
// timeout from now.
func Resume(r Rollout, now time.Time) (Rollout, error) {
	if r.State != Paused {
		return r, fmt.Errorf("resume rollout %s: it is %s: %w", r.ID, r.State, ErrState)
	}
	r = r.Clone()
	r.State, r.Updated = Running, now
	r.extendDeadline(now)
	return r, nil
}

// Abort ends r for good: no host is touched any more. Hosts already moved
// stay on the new version; the others keep the version they had.
func Abort(r Rollout, now time.Time) (Rollout, error) {
	if !r.State.Active() {
		return r, fmt.Errorf("abort rollout %s: it is %s already: %w", r.ID, r.State, ErrState)
	}
	r = r.Clone()
	r.State, r.Reason, r.Finished, r.Updated = Aborted, "aborted by the operator", now, now
	r.recount()
	return r, nil
}

// Restarted adjusts r loaded from the state file after an appliance
// restart: nodes could not boot while the appliance was down, so the
// current batch gets a full batch timeout from now. Hosts in it are
// checked again by the next Step, not power-cycled again if they already
// run the target.
func Restarted(r Rollout, now time.Time) Rollout {
	r = r.Clone()
	if r.State == Running {
		r.extendDeadline(now)
	}
	// A version still to be made current is tried again at once.
	r.CurrentTried = time.Time{}
	r.recount()
	return r
}

func (r *Rollout) extendDeadline(now time.Time) {
	if r.Batch < len(r.Batches) && !r.Batches[r.Batch].Started.IsZero() {
		r.Batches[r.Batch].Deadline = now.Add(time.Duration(r.BatchTimeout))
	}
}
