package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// PowerStates are the states moobi_power_state always reports (0 when no
// host is in one), in the order it reports them.
var PowerStates = []string{"on", "off", "unknown"}

// powerCollector reports moobi_power_state{state}: how many hosts with a
// BMC are in each power state, as the BMC poller last read them.
type powerCollector struct {
	desc *prometheus.Desc

	mu  sync.Mutex
	src func() map[string]int
}

func (c *powerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *powerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	counts := map[string]int{}
	if src != nil {
		counts = src()
	}
	for _, s := range PowerStates {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
}

// SetPowerSource registers moobi_power_state{state} (on, off and unknown
// always present) and tells it where to read, at each scrape, how many
// hosts with a BMC are in each power state (poller.Poller.Counts). A
// second call replaces the source.
func (m *Metrics) SetPowerSource(f func() map[string]int) {
	c := &powerCollector{
		desc: prometheus.NewDesc("moobi_power_state",
			"Hosts with a BMC in hosts.yaml by power state, as the appliance last read their BMCs (unknown: not read yet, or the last read failed).",
			[]string{"state"}, nil),
		src: f,
	}
	if err := m.Registry.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			old := are.ExistingCollector.(*powerCollector)
			old.mu.Lock()
			old.src = f
			old.mu.Unlock()
		}
	}
}
