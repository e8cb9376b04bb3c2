package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// HandshakesClosed is what the seeder's BitTorrent listener closed of the
// incoming peer connections (images/swarm/admit.Stats).
type HandshakesClosed struct {
	// PerAddress: closed as accepted, as their address had the most
	// handshakes one address may have in progress.
	PerAddress int64
	// MadeRoom: handshakes closed, the longest in progress, to make room
	// for a newer one.
	MadeRoom int64
}

// handshakeCollector reports moobi_swarm_handshakes_closed_total{reason},
// read at each scrape.
type handshakeCollector struct {
	desc *prometheus.Desc

	mu  sync.Mutex
	src func() HandshakesClosed
}

func (c *handshakeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *handshakeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	n := src()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n.PerAddress), "per-address")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n.MadeRoom), "made-room")
}

// SetHandshakeSource registers moobi_swarm_handshakes_closed_total{reason}
// (per-address and made-room always present) and tells it where to read,
// at each scrape, the incoming BitTorrent connections the seeder closed
// while they handshook: over the per-address handshake limit, or the
// longest in progress to make room for a newer one. A second call
// replaces the source.
func (m *Metrics) SetHandshakeSource(f func() HandshakesClosed) {
	c := &handshakeCollector{
		desc: prometheus.NewDesc("moobi_swarm_handshakes_closed_total",
			"Incoming BitTorrent connections the appliance's seeder closed while they handshook, by reason (per-address: over the per-address handshake limit; made-room: the longest in progress, for a newer one).",
			[]string{"reason"}, nil),
		src: f,
	}
	if err := m.Registry.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			old := are.ExistingCollector.(*handshakeCollector)
			old.mu.Lock()
			old.src = f
			old.mu.Unlock()
		}
	}
}
