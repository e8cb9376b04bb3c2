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
	uploaded  *prometheus.Desc
	nodes     *prometheus.Desc
	peers     *prometheus.Desc
	nodeBytes *prometheus.Desc
	resting   *prometheus.Desc

	mu         sync.Mutex
	httpSent   map[string]int64
	bittorrent func() map[string]int64
	nodeStates func() map[string]int
	swarms     func() []Swarm
	rest       func() map[string]int
	states     []string
}

// Swarm is one image's swarm figures.
type Swarm struct {
	Image              string
	Seeders, Leechers  int
	FromPeers, FromApp int64 // bytes nodes got from peers and from the appliance, in their current boot
}

func newSwarmCollector(states []string) *swarmCollector {
	return &swarmCollector{
		uploaded: prometheus.NewDesc("moobi_swarm_uploaded_bytes_total",
			"Image bytes the appliance itself uploaded, by image and protocol (bittorrent to peers, http as web seed).",
			[]string{"image", "protocol"}, nil),
		nodes: prometheus.NewDesc("moobi_nodes", "Nodes in each boot state.", []string{"state"}, nil),
		peers: prometheus.NewDesc("moobi_swarm_peers",
			"Live peers of each image's current version in the tracker, the appliance apart, by role (seeder, leecher).",
			[]string{"image", "role"}, nil),
		nodeBytes: prometheus.NewDesc("moobi_swarm_node_bytes",
			"Image bytes the nodes booting it downloaded in their current boot, by source (peers, appliance).",
			[]string{"image", "source"}, nil),
		resting: prometheus.NewDesc("moobi_seeder_resting_versions",
			"Versions of each image whose BitTorrent upload the appliance has paused while nodes hold every piece (appliance.seed_rest_copies).",
			[]string{"image"}, nil),
		httpSent: map[string]int64{},
		states:   states,
	}
}

func (c *swarmCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.uploaded
	ch <- c.nodes
	ch <- c.peers
	ch <- c.nodeBytes
	ch <- c.resting
}

func (c *swarmCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	bt, ns, sw, rest := c.bittorrent, c.nodeStates, c.swarms, c.rest
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
	if sw != nil {
		for _, s := range sw() {
			ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(s.Seeders), s.Image, "seeder")
			ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(s.Leechers), s.Image, "leecher")
			ch <- prometheus.MustNewConstMetric(c.nodeBytes, prometheus.GaugeValue, float64(s.FromPeers), s.Image, "peers")
			ch <- prometheus.MustNewConstMetric(c.nodeBytes, prometheus.GaugeValue, float64(s.FromApp), s.Image, "appliance")
		}
	}
	if rest != nil {
		for image, n := range rest() {
			ch <- prometheus.MustNewConstMetric(c.resting, prometheus.GaugeValue, float64(n), image)
		}
	}
	if ns != nil {
		counts := ns()
		for _, s := range c.states {
			ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(counts[s]), s)
		}
	}
}
