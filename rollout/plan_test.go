package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moobi/power"
)

func env() Env {
	e := Env{ImageOf: map[string]string{}, Current: "v2", Versions: []string{"v1", "v2"},
		Observed: map[string]Observation{}, Pins: map[string]Pin{}}
	for _, n := range []string{"r1-n1", "r1-n2", "r1-n3", "r2-n1", "r2-n2"} {
		e.Hosts = append(e.Hosts, power.Host{Name: n, Profile: "web", HasBMC: true})
		e.ImageOf[n] = "web"
		e.Observed[n] = up("v1", t0)
	}
	e.Hosts = append(e.Hosts, power.Host{Name: "db1", Profile: "db", HasBMC: true})
	e.ImageOf["db1"] = "db"
	return e
}

func batchNames(r Rollout) [][]string {
	var out [][]string
	for _, b := range r.Batches {
		var names []string
		for _, h := range b.Hosts {
			names = append(names, h.Name)
		}
		out = append(out, names)
	}
	return out
}

func TestPlanBatches(t *testing.T) {
	e := env()
	e.Observed["r2-n2"] = up("v2", t0)
	r, holds, err := Plan(Request{Image: "web", Targets: []string{"r1-*", "r2-n2"}, Options: Options{BatchSize: 2}}, e, "id", t0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"r1-n1", "r1-n2"}, {"r1-n3", "r2-n2"}}, batchNames(r)); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	if r.Version != "v2" || r.State != Planned || r.BatchTimeout != Duration(DefaultBatchTimeout) {
		t.Errorf("version %q state %s timeout %v", r.Version, r.State, r.BatchTimeout)
	}
	if h := r.Batches[0].Hosts[0]; h.FromVersion != "v1" {
		t.Errorf("from version %q, want v1", h.FromVersion)
	}
	// v2 is current already: every web host that runs v1 is held on it
	// (r2-n1 outside the rollout too); r2-n2 runs v2, what it boots.
	want := []string{"r1-n1", "r1-n2", "r1-n3", "r2-n1"}
	var got []string
	for _, h := range want {
		if p, ok := holds[h]; ok && p.Version == "v1" && p.Image == "web" {
			got = append(got, h)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" || len(holds) != len(want) {
		t.Errorf("holds %v (-want +got):\n%s", holds, diff)
	}
}

func TestPlanNoHoldWhenCurrentIsOld(t *testing.T) {
	e := env()
	e.Current = "v1" // published with --no-current
	r, holds, err := Plan(Request{Image: "web", Version: "v2", Targets: []string{"r1-n1"}}, e, "id", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(holds) != 0 || r.Version != "v2" {
		t.Errorf("holds %v, version %s; want none, v2", holds, r.Version)
	}
}

func TestPlanRefuses(t *testing.T) {
	active := mk(0, []string{"r1-n2"})
	active.ID = "web-1"
	tests := []struct {
		name     string
		req      Request
		conflict bool
		want     string
	}{
		{"unknown image", Request{Image: "nope", Targets: []string{"all"}}, false, `image "nope": not in the catalog`},
		{"unknown version", Request{Image: "web", Version: "v9", Targets: []string{"r1-n1"}}, false, `has no version "v9" (kept: v1, v2)`},
		{"no targets", Request{Image: "web"}, false, "no targets"},
		{"another image's host", Request{Image: "web", Targets: []string{"db1"}}, false, `host db1 boots image "db", not "web"`},
		{"bad batch", Request{Image: "web", Targets: []string{"r1-n1"}, Options: Options{BatchSize: -1}}, false, "batch_size -1"},
		{"short timeout", Request{Image: "web", Targets: []string{"r1-n1"}, Options: Options{BatchTimeout: Duration(time.Second)}}, false, "batch_timeout 1s"},
		{"glob of no host of the image", Request{Image: "web", Targets: []string{"db*"}}, false, `target "db*": names no host of image "web" with a bmc`},
		{"overlap", Request{Image: "web", Targets: []string{"r1-*"}}, true, "r1-n2 (rollout web-1, running)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := env()
			if tc.req.Image != "web" {
				e.Current, e.Versions = "", nil
			}
			e.Rollouts = []Rollout{active}
			_, _, err := Plan(tc.req, e, "id", t0)
			var re *RequestError
			var ce *ConflictError
			if tc.conflict && !errors.As(err, &ce) || !tc.conflict && !errors.As(err, &re) {
				t.Fatalf("error %T %v", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// A start holds no host another active rollout is moving, nor one pinned
// already.
func TestPlanHoldsLeaveOthersAlone(t *testing.T) {
	e := env()
	moving := mk(0, []string{"r2-n1"})
	moving.ID = "web-1"
	e.Rollouts = []Rollout{moving}
	e.Pins["r2-n1"] = Pin{Image: "web", Version: "v2", Rollout: "web-1"}
	e.Pins["r2-n2"] = Pin{Image: "web", Version: "v2"}
	delete(e.Pins, "r2-n1")
	_, holds, err := Plan(Request{Image: "web", Targets: []string{"r1-n1"}}, e, "id", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"r2-n1", "r2-n2"} {
		if p, ok := holds[h]; ok {
			t.Errorf("%s held on %s", h, p.Version)
		}
	}
	if _, ok := holds["r1-n3"]; !ok {
		t.Errorf("r1-n3 (runs v1, v2 current, no pin, no rollout) not held: %v", holds)
	}
}
