package rollout

import (
	"fmt"
	"time"
)

// NewID names a rollout after its image and start time (UTC, to the
// second), with a suffix if taken says the name is taken.
func NewID(image string, now time.Time, taken func(string) bool) string {
	base := image + "-" + now.UTC().Format("20060102-150405")
	id := base
	for i := 2; taken(id); i++ {
		id = fmt.Sprintf("%s-%d", base, i)
	}
	return id
}

// HostCounts returns how many hosts of running and paused rollouts are in
// each host state (for moobi_rollout_hosts).
func (m *Runner) HostCounts() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, s := range HostStates {
		out[string(s)] = 0
	}
	for _, r := range m.file.Rollouts {
		if !r.State.Active() {
			continue
		}
		for _, b := range r.Batches {
			for _, h := range b.Hosts {
				out[string(h.State)]++
			}
		}
	}
	return out
}

// StateCounts returns how many rollouts are stored in each state (for
// moobi_rollouts).
func (m *Runner) StateCounts() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, s := range []State{Running, Paused, Succeeded, Failed, Aborted} {
		out[string(s)] = 0
	}
	for _, r := range m.file.Rollouts {
		out[string(r.State)]++
	}
	return out
}
