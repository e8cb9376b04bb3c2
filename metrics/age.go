package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ageCollector reports, for each node state, how long the node longest in
// it has been there: what a "node stuck" alert needs, which the counts of
// moobi_nodes cannot tell (a state other nodes keep entering and leaving
// hides one that never leaves).
type ageCollector struct {
	desc   *prometheus.Desc
	states []string

	mu  sync.Mutex
	src func() map[string]time.Duration
}

func newAgeCollector(states []string) *ageCollector {
	return &ageCollector{
		desc: prometheus.NewDesc("moobi_nodes_state_age_max_seconds",
			"For each boot state, how long the node that has been in it longest has been there (0 with no node in it).",
			[]string{"state"}, nil),
		states: states,
	}
}

func (c *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *ageCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return
	}
	ages := src()
	for _, s := range c.states {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, ages[s].Seconds(), s)
	}
}

// SetStateAgeSource tells the metrics where to read, at each scrape, how
// long the node longest in each state has been in it.
func (m *Metrics) SetStateAgeSource(f func() map[string]time.Duration) {
	m.ages.mu.Lock()
	defer m.ages.mu.Unlock()
	m.ages.src = f
}
