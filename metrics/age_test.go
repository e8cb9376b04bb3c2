package metrics

import (
	"testing"
	"time"

	"moobi/nodeapi"
)

func TestStateAgeMetric(t *testing.T) {
	m := New()
	ages := func() map[string]float64 {
		fams, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != "moobi_nodes_state_age_max_seconds" {
				continue
			}
			for _, s := range f.GetMetric() {
				out[s.GetLabel()[0].GetValue()] = s.GetGauge().GetValue()
			}
		}
		return out
	}
	if got := ages(); len(got) != 0 {
		t.Errorf("series before a source is set: %v, want none", got)
	}
	m.SetStateAgeSource(func() map[string]time.Duration {
		return map[string]time.Duration{nodeapi.StateFetching: 90 * time.Second, nodeapi.StateFailed: 1500 * time.Millisecond}
	})
	got := ages()
	if len(got) != len(nodeapi.States) {
		t.Errorf("%d series, want one per node state (%d): %v", len(got), len(nodeapi.States), got)
	}
	for state, want := range map[string]float64{nodeapi.StateFetching: 90, nodeapi.StateFailed: 1.5, nodeapi.StateRunning: 0} {
		if v, ok := got[state]; !ok || v != want {
			t.Errorf("state %s: %v (present: %v), want %v", state, v, ok, want)
		}
	}
}
