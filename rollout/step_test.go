package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/nodeapi"
)

var t0 = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)

// mk builds a running rollout of web to v2 with the given batches of host
// names, all waiting.
func mk(maxFail int, batches ...[]string) Rollout {
	r := Rollout{ID: "r", Image: "web", Version: "v2", State: Running,
		Options: Options{BatchSize: len(batches[0]), MaxFailures: maxFail, BatchTimeout: Duration(10 * time.Minute)}}
	for i, b := range batches {
		bb := Batch{Index: i}
		for _, n := range b {
			bb.Hosts = append(bb.Hosts, Host{Name: n, State: Waiting, FromVersion: "v1"})
		}
		r.Batches = append(r.Batches, bb)
	}
	r.recount()
	return r
}

// at sets hosts of r's current batch to state s, powered at t0 (booting
// hosts' batch started at t0, deadline t0+10m).
func at(r Rollout, s HostState, names ...string) Rollout {
	r = r.Clone()
	for bi := range r.Batches {
		for i := range r.Batches[bi].Hosts {
			h := &r.Batches[bi].Hosts[i]
			for _, n := range names {
				if h.Name == n {
					h.State, h.Powered = s, t0
					r.Batches[bi].Started, r.Batches[bi].Deadline = t0, t0.Add(10*time.Minute)
				}
			}
		}
	}
	r.recount()
	return r
}

func up(version string, boot time.Time) Observation {
	return Observation{State: nodeapi.StateRunning, Image: "web", Version: version, BootStarted: boot}
}

func states(r Rollout) map[string]HostState {
	out := map[string]HostState{}
	for _, b := range r.Batches {
		for _, h := range b.Hosts {
			out[h.Name] = h.State
		}
	}
	return out
}

func TestStep(t *testing.T) {
	later := t0.Add(time.Minute)
	tests := []struct {
		name      string
		r         Rollout
		obs       map[string]Observation
		now       time.Time
		wantPower []string
		want      map[string]HostState
		state     State
		batch     int
		reason    string // substring of a failed host's or the rollout's reason
		current   bool
	}{{
		name:      "first batch powered, the others wait",
		r:         mk(0, []string{"a", "b"}, []string{"c", "d"}, []string{"e"}),
		now:       t0,
		wantPower: []string{"a", "b"},
		want:      map[string]HostState{"a": Powering, "b": Powering, "c": Waiting, "d": Waiting, "e": Waiting},
		state:     Running,
	}, {
		name:  "next batch waits for every host of this one",
		r:     at(mk(0, []string{"a", "b"}, []string{"c"}), Booting, "a", "b"),
		obs:   map[string]Observation{"a": up("v2", later), "b": {State: nodeapi.StateFetching, Image: "web", Version: "v2", BootStarted: later}},
		now:   later,
		want:  map[string]HostState{"a": HostRunning, "b": Booting, "c": Waiting},
		state: Running,
	}, {
		name:      "batch done: the next one starts in the same step",
		r:         at(mk(0, []string{"a", "b"}, []string{"c"}), Booting, "a", "b"),
		obs:       map[string]Observation{"a": up("v2", later), "b": up("v2", later)},
		now:       later,
		wantPower: []string{"c"},
		want:      map[string]HostState{"a": HostRunning, "b": HostRunning, "c": Powering},
		state:     Running,
		batch:     1,
	}, {
		name:  "a report from before the power action does not count",
		r:     at(mk(0, []string{"a"}), Booting, "a"),
		obs:   map[string]Observation{"a": up("v1", t0.Add(-time.Hour))},
		now:   later,
		want:  map[string]HostState{"a": Booting},
		state: Running,
	}, {
		name:   "wrong version fails the host, and the rollout with no failures allowed",
		r:      at(mk(0, []string{"a"}, []string{"b"}), Booting, "a"),
		obs:    map[string]Observation{"a": up("v1", later)},
		now:    later,
		want:   map[string]HostState{"a": HostFailed, "b": Waiting},
		state:  Failed,
		reason: "wrong version: booted web v1, not web v2",
	}, {
		name:      "failure budget: one failure allowed, the rollout goes on",
		r:         at(mk(1, []string{"a", "b"}, []string{"c"}), Booting, "a", "b"),
		obs:       map[string]Observation{"a": up("v2", later), "b": {State: nodeapi.StateFailed, Reason: "disk", BootStarted: later}},
		now:       later,
		wantPower: []string{"c"},
		want:      map[string]HostState{"a": HostRunning, "b": HostFailed, "c": Powering},
		state:     Running,
		batch:     1,
		reason:    "node failed: disk",
	}, {
		name:   "failure budget: a second failure stops it",
		r:      at(at(mk(1, []string{"a", "b"}, []string{"c"}), Booting, "a"), Booting, "b"),
		obs:    map[string]Observation{"a": {State: nodeapi.StateFailed, Reason: "x", BootStarted: later}, "b": {State: nodeapi.StateFailed, Reason: "y", BootStarted: later}},
		now:    later,
		want:   map[string]HostState{"a": HostFailed, "b": HostFailed, "c": Waiting},
		state:  Failed,
		reason: "2 hosts failed, more than max_failures 1",
	}, {
		name:   "timeout",
		r:      at(mk(0, []string{"a"}), Booting, "a"),
		obs:    map[string]Observation{"a": {State: nodeapi.StateFetching, Image: "web", Version: "v2", BootStarted: later}},
		now:    t0.Add(10 * time.Minute),
		want:   map[string]HostState{"a": HostFailed},
		state:  Failed,
		reason: "timeout: not running v2 within the batch timeout 10m0s (node fetching",
	}, {
		name:  "degraded fails without accept_degraded",
		r:     at(mk(0, []string{"a"}), Booting, "a"),
		obs:   map[string]Observation{"a": {State: nodeapi.StateDegraded, Image: "web", Version: "v2", Reason: "failed units: foo.service", BootStarted: later}},
		now:   later,
		want:  map[string]HostState{"a": HostFailed},
		state: Failed, reason: "degraded: failed units: foo.service",
	}, {
		name: "degraded counts with accept_degraded",
		r: func() Rollout {
			r := at(mk(0, []string{"a"}), Booting, "a")
			r.AcceptDegraded = true
			return r
		}(),
		obs:   map[string]Observation{"a": {State: nodeapi.StateDegraded, Image: "web", Version: "v2", BootStarted: later}},
		now:   later,
		want:  map[string]HostState{"a": HostRunning},
		state: Succeeded, batch: 1,
	}, {
		name:      "a host already on the target is skipped, not power-cycled",
		r:         mk(0, []string{"a", "b"}),
		obs:       map[string]Observation{"a": up("v2", t0.Add(-time.Hour))},
		now:       t0,
		wantPower: []string{"b"},
		want:      map[string]HostState{"a": Skipped, "b": Powering},
		state:     Running,
	}, {
		name:    "last batch done: succeeded, made current when asked",
		r:       func() Rollout { r := at(mk(0, []string{"a"}), Booting, "a"); r.MakeCurrent = true; return r }(),
		obs:     map[string]Observation{"a": up("v2", later)},
		now:     later,
		want:    map[string]HostState{"a": HostRunning},
		state:   Succeeded,
		batch:   1,
		current: true,
	}, {
		name: "paused: no power action, no timeout, but a host that comes up is recorded",
		r: func() Rollout {
			r := at(mk(0, []string{"a", "b"}, []string{"c"}), Booting, "a", "b")
			r.State = Paused
			return r
		}(),
		obs:   map[string]Observation{"a": up("v2", later), "b": up("v2", later)},
		now:   t0.Add(time.Hour),
		want:  map[string]HostState{"a": HostRunning, "b": HostRunning, "c": Waiting},
		state: Paused,
	}, {
		name:  "aborted: nothing happens",
		r:     func() Rollout { r := mk(0, []string{"a"}); r.State = Aborted; return r }(),
		now:   later,
		want:  map[string]HostState{"a": Waiting},
		state: Aborted,
	}, {
		name:  "after a restart: a powering host already on the target is not power-cycled again",
		r:     at(mk(0, []string{"a", "b"}), Powering, "a", "b"),
		obs:   map[string]Observation{"a": up("v2", later), "b": up("v1", t0.Add(-time.Hour))},
		now:   later,
		want:  map[string]HostState{"a": HostRunning, "b": Powering},
		state: Running, wantPower: []string{"b"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.r.Clone()
			got, act := Step(tc.r, tc.obs, tc.now)
			if diff := cmp.Diff(before, tc.r); diff != "" {
				t.Errorf("Step modified its argument (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantPower, act.Power); diff != "" {
				t.Errorf("power (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, states(got)); diff != "" {
				t.Errorf("host states (-want +got):\n%s", diff)
			}
			if got.State != tc.state || got.Batch != tc.batch {
				t.Errorf("rollout %s at batch %d, want %s at batch %d (reason %q)", got.State, got.Batch, tc.state, tc.batch, got.Reason)
			}
			if act.MakeCurrent != tc.current || got.CurrentPending != tc.current {
				t.Errorf("MakeCurrent %v, CurrentPending %v, want %v", act.MakeCurrent, got.CurrentPending, tc.current)
			}
			if tc.reason != "" {
				all := got.Reason
				for _, b := range got.Batches {
					for _, h := range b.Hosts {
						all += "\n" + h.Reason
					}
				}
				if !strings.Contains(all, tc.reason) {
					t.Errorf("no reason says %q:\n%s", tc.reason, all)
				}
			}
			if got.Counts[HostFailed] != got.Failures {
				t.Errorf("failures %d, counts %v", got.Failures, got.Counts)
			}
		})
	}
}

func TestPowerDone(t *testing.T) {
	r := at(mk(0, []string{"a", "b"}), Powering, "a", "b")
	got := PowerDone(r, map[string]error{"a": nil, "b": errors.New("the BMC did not answer")}, t0)
	if diff := cmp.Diff(map[string]HostState{"a": Booting, "b": HostFailed}, states(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if h := got.Batches[0].Hosts[1]; h.Reason != "power: the BMC did not answer" {
		t.Errorf("reason %q", h.Reason)
	}
	// The failure stops the rollout at the next step, with nothing more powered.
	next, act := Step(got, nil, t0.Add(time.Second))
	if next.State != Failed || len(act.Power) != 0 {
		t.Errorf("after a power failure: %s, power %v; want failed, none", next.State, act.Power)
	}
}

func TestControls(t *testing.T) {
	r := mk(0, []string{"a"}, []string{"b"})
	p, err := Pause(r, t0)
	if err != nil || p.State != Paused {
		t.Fatalf("Pause: %s, %v", p.State, err)
	}
	if _, act := Step(p, nil, t0); len(act.Power) != 0 {
		t.Errorf("a paused rollout powered %v", act.Power)
	}
	if _, err := Pause(p, t0); !errors.Is(err, ErrState) {
		t.Errorf("Pause of a paused rollout: %v, want ErrState", err)
	}
	// Resume gives the current batch a full timeout from now.
	started := at(p, Booting, "a")
	res, err := Resume(started, t0.Add(time.Hour))
	if err != nil || res.State != Running {
		t.Fatalf("Resume: %s, %v", res.State, err)
	}
	if d := res.Batches[0].Deadline; !d.Equal(t0.Add(time.Hour + 10*time.Minute)) {
		t.Errorf("deadline after resume %v", d)
	}
	if _, act := Step(res, nil, t0.Add(time.Hour+time.Minute)); len(act.Power) != 0 {
		t.Errorf("resumed rollout re-powered %v", act.Power)
	}
	if _, err := Resume(res, t0); !errors.Is(err, ErrState) {
		t.Errorf("Resume of a running rollout: %v, want ErrState", err)
	}
	a, err := Abort(res, t0)
	if err != nil || a.State != Aborted || a.Finished.IsZero() {
		t.Fatalf("Abort: %s, %v", a.State, err)
	}
	if _, err := Abort(a, t0); !errors.Is(err, ErrState) {
		t.Errorf("Abort of an aborted rollout: %v, want ErrState", err)
	}
	if _, err := Resume(a, t0); !errors.Is(err, ErrState) {
		t.Errorf("Resume of an aborted rollout: %v, want ErrState", err)
	}
}

func TestRestarted(t *testing.T) {
	r := at(mk(0, []string{"a"}), Booting, "a")
	now := t0.Add(3 * time.Hour) // the appliance was down past the deadline
	got := Restarted(r, now)
	if d := got.Batches[0].Deadline; !d.Equal(now.Add(10 * time.Minute)) {
		t.Errorf("deadline %v, want %v", d, now.Add(10*time.Minute))
	}
	next, act := Step(got, nil, now.Add(time.Second))
	if next.State != Running || len(act.Power) != 0 || states(next)["a"] != Booting {
		t.Errorf("after restart: %s, power %v, hosts %v; want running, none, a booting", next.State, act.Power, states(next))
	}
}
