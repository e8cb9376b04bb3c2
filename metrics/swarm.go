package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// swarmCollector reports what the appliance itself uploaded of each image
// (the offload figure: the less, the more the rack served itself), over
// BitTorrent (from the seeder) and over HTTP (web seed), and how many nodes
// are in each state.
type swarmCollector struct {
	uploaded *prometheus.Desc
	nodes    *prometheus.Desc

	mu         sync.Mutex
	httpSent   map[string]int64
	bittorrent func() map[string]int64
	nodeStates func() map[string]int
	states     []string
}

func newSwarmCollector(states []string) *swarmCollector {
	return &swarmCollector{
		uploaded: prometheus.NewDesc("moobi_swarm_uploaded_bytes_total",
			"Image bytes the appliance itself uploaded, by image and protocol (bittorrent to peers, http as web seed).",
			[]string{"image", "protocol"}, nil),
		nodes:    prometheus.NewDesc("moobi_nodes", "Nodes in each boot state.", []string{"state"}, nil),
		httpSent: map[string]int64{},
		states:   states,
	}
}

func (c *swarmCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.uploaded
	ch <- c.nodes
}

func (c *swarmCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	bt, ns := c.bittorrent, c.nodeStates
	sent := make(map[string]int64, len(c.httpSent))
	for k, v := range c.httpSent {
		sent[k] = v
	}
	c.mu.Unlock()
	if bt != nil {
		for image, n := range bt() {
			ch <- prometheus.MustNewConstMetric(c.uploaded, prometheus.CounterValue, float64(n), image, "bittorrent")
		}
	}
	for image, n := range sent {
		ch <- prometheus.MustNewConstMetric(c.uploaded, prometheus.CounterValue, float64(n), image, "http")
	}
	if ns != nil {
		counts := ns()
		for _, s := range c.states {
			ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(counts[s]), s)
		}
	}
}
