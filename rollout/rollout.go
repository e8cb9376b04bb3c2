// Package rollout moves a set of hosts to an image version in batches:
// each batch is pinned to the target version and power-cycled into a
// network boot, and the next batch starts only when every host of this one
// reports running on the target version. More failures than the rollout
// allows stop it.
//
// The decisions are pure functions over a Rollout value (Plan, Step,
// PowerDone, Pause, Resume, Abort, Restarted); the Runner does the I/O
// (BMCs, node observations, the state file) around them. A rollout's state
// and the per-host version pins live in one JSON file under
// data_dir/state, written atomically, so that a rollout resumes after an
// appliance restart where it was.
package rollout

import (
	"time"
)

// State is a rollout's state.
type State string

// Rollout states.
const (
	Planned   State = "planned" // a dry run's plan: never stored
	Running   State = "running"
	Paused    State = "paused"
	Succeeded State = "succeeded"
	Failed    State = "failed" // more hosts failed than max_failures allows
	Aborted   State = "aborted"
)

// Active tells whether a rollout in state s still holds its hosts: no
// other rollout may take them.
func (s State) Active() bool { return s == Running || s == Paused }

// HostState is one host's state in a rollout.
type HostState string

// Host states.
const (
	// Waiting: not touched yet.
	Waiting HostState = "waiting"
	// Powering: pinned to the target version, its BMC's pxe action asked for.
	Powering HostState = "powering"
	// Booting: power action done; waiting for the node to report running
	// on the target version in a boot that started after the power action.
	Booting HostState = "booting"
	// HostRunning: reached running on the target version.
	HostRunning HostState = "running"
	// HostFailed: power error, timeout, node failed, wrong version, or
	// degraded without AcceptDegraded; Reason says which.
	HostFailed HostState = "failed"
	// Skipped: already running the target version when its batch came.
	Skipped HostState = "skipped"
)

// HostStates lists every host state, in order.
var HostStates = []HostState{Waiting, Powering, Booting, HostRunning, HostFailed, Skipped}

// done tells whether a host in state s needs nothing more.
func (s HostState) done() bool { return s == HostRunning || s == HostFailed || s == Skipped }

// Host is one host of a rollout.
type Host struct {
	Name        string    `json:"name"`
	State       HostState `json:"state"`
	FromVersion string    `json:"from_version,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	// Powered is when the power action was asked for: a boot that started
	// after it is the rollout's boot.
	Powered time.Time `json:"powered,omitzero"`
	Done    time.Time `json:"done,omitzero"`
	// NodeState and NodeVersion are what the node last reported (for
	// display).
	NodeState   string `json:"node_state,omitempty"`
	NodeVersion string `json:"node_version,omitempty"`
}

// Batch states, as the API shows them.
const (
	BatchPending = "pending"
	BatchActive  = "active"
	BatchDone    = "done"
)

// Batch is a set of hosts power-cycled together.
type Batch struct {
	Index    int       `json:"index"`
	State    string    `json:"state"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Deadline is when hosts still booting fail with a timeout.
	Deadline time.Time `json:"deadline,omitzero"`
	Hosts    []Host    `json:"hosts"`
}

// Duration is a time.Duration that JSON writes as "20m0s" and reads
// from such a text.
type Duration time.Duration

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as "20m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Rollout is one rollout, as stored and as /v1/rollouts serves it.
type Rollout struct {
	ID      string   `json:"id"`
	Image   string   `json:"image"`
	Version string   `json:"version"`
	Targets []string `json:"targets"`
	State   State    `json:"state"`
	Reason  string   `json:"reason,omitempty"`
	Options
	// Batch is the index of the current batch (len(Batches) when all are
	// done).
	Batch    int               `json:"batch"`
	Failures int               `json:"failures"`
	Counts   map[HostState]int `json:"hosts"`
	Batches  []Batch           `json:"batches"`
	Created  time.Time         `json:"created"`
	Started  time.Time         `json:"started,omitzero"`
	Updated  time.Time         `json:"updated,omitzero"`
	Finished time.Time         `json:"finished,omitzero"`
	// CurrentPending says that the rollout succeeded with MakeCurrent and
	// its version is not made current yet: the intent is stored with the
	// success, so that a crash or a failed try before the switch loses
	// nothing; the runner tries again (see CurrentDue) until it is done.
	CurrentPending bool `json:"make_current_pending,omitempty"`
	// CurrentError is why the last try to make the version current
	// failed ("" once it succeeded); CurrentTried is when it was tried.
	CurrentError string    `json:"make_current_error,omitempty"`
	CurrentTried time.Time `json:"make_current_tried,omitzero"`
}

// Options are what the operator chooses for a rollout.
type Options struct {
	BatchSize    int      `json:"batch_size"`
	MaxFailures  int      `json:"max_failures"`
	BatchTimeout Duration `json:"batch_timeout"`
	// AcceptDegraded counts a node that reports degraded (systemd up with
	// failed units) on the target version as done; else it fails.
	AcceptDegraded bool `json:"accept_degraded"`
	// MakeCurrent makes the target version the image's current one when
	// the rollout succeeds.
	MakeCurrent bool `json:"make_current"`
}

// Defaults.
const (
	DefaultBatchSize    = 1
	DefaultBatchTimeout = 20 * time.Minute
)

// Hosts returns the names of every host of r, in batch order.
func (r *Rollout) Hosts() []string {
	var out []string
	for _, b := range r.Batches {
		for _, h := range b.Hosts {
			out = append(out, h.Name)
		}
	}
	return out
}

// Clone returns a deep copy of r.
func (r Rollout) Clone() Rollout {
	r.Targets = append([]string(nil), r.Targets...)
	bs := make([]Batch, len(r.Batches))
	for i, b := range r.Batches {
		b.Hosts = append([]Host(nil), b.Hosts...)
		bs[i] = b
	}
	r.Batches = bs
	c := make(map[HostState]int, len(r.Counts))
	for k, v := range r.Counts {
		c[k] = v
	}
	r.Counts = c
	return r
}

// recount fills Failures, Counts and each batch's State.
func (r *Rollout) recount() {
	r.Counts = make(map[HostState]int, len(HostStates))
	for _, s := range HostStates {
		r.Counts[s] = 0
	}
	for i := range r.Batches {
		b := &r.Batches[i]
		for _, h := range b.Hosts {
			r.Counts[h.State]++
		}
		switch {
		case i < r.Batch:
			b.State = BatchDone
		case i == r.Batch && !b.Started.IsZero():
			b.State = BatchActive
		default:
			b.State = BatchPending
		}
	}
	r.Failures = r.Counts[HostFailed]
}
