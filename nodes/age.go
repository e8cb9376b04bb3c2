package nodes

import "time"

// StateAges returns, for each state some node is in, how long the node
// that entered it longest ago has been in it: the start of its open phase
// (its last update when it has no timeline). It copies nothing, for a
// metrics scrape.
func (r *Registry) StateAges() map[string]time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	out := map[string]time.Duration{}
	for _, e := range r.nodes {
		since := e.Updated
		if k := len(e.Phases) - 1; k >= 0 && e.Phases[k].State == e.State && e.Phases[k].End.IsZero() {
			since = e.Phases[k].Start
		}
		d := max(now.Sub(since), 0)
		if old, ok := out[e.State]; !ok || d > old {
			out[e.State] = d
		}
	}
	return out
}
