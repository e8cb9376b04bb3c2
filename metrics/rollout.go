package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// rolloutCollector reports the rollouts' figures at each scrape.
type rolloutCollector struct {
	hosts, rollouts *prometheus.Desc
	hostSrc         func() map[string]int
	rolloutSrc      func() map[string]int
}

func (c *rolloutCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.hosts; ch <- c.rollouts }

func (c *rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	for _, x := range []struct {
		d   *prometheus.Desc
		src func() map[string]int
	}{{c.hosts, c.hostSrc}, {c.rollouts, c.rolloutSrc}} {
		counts := x.src()
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ch <- prometheus.MustNewConstMetric(x.d, prometheus.GaugeValue, float64(counts[k]), k)
		}
	}
}

// Rollouts registers moobi_rollout_hosts{state} (hosts of running and
// paused rollouts, by host state), moobi_rollouts{state} (rollouts kept,
// by state), read from hosts and rollouts at each scrape, and
// moobi_rollout_batches_done_total, and returns the function that counts
// one batch done.
func (m *Metrics) Rollouts(hosts, rollouts func() map[string]int) (batchDone func()) {
	m.Registry.MustRegister(&rolloutCollector{
		hosts: prometheus.NewDesc("moobi_rollout_hosts",
			"Hosts of running and paused rollouts, by their state in the rollout (waiting, powering, booting, running, failed, skipped).",
			[]string{"state"}, nil),
		rollouts: prometheus.NewDesc("moobi_rollouts",
			"Rollouts the appliance keeps, by state (running, paused, succeeded, failed, aborted).",
			[]string{"state"}, nil),
		hostSrc: hosts, rolloutSrc: rollouts,
	})
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moobi_rollout_batches_done_total", Help: "Rollout batches whose every host reached the target version, failed or was skipped.",
	})
	m.Registry.MustRegister(c)
	return c.Inc
}
