// Package metrics holds the appliance's Prometheus metrics (prefix moobi_)
// and observes the boot services to keep them. One Metrics is built in main
// and handed to every service; there is no global registry.
package metrics

import (
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"moobi/bootserver/proxydhcp"
	"moobi/bootserver/tftpd"
	"moobi/nodeapi"
	"moobi/nodes"
)

// Metrics is the appliance's registry and collectors.
type Metrics struct {
	Registry *prometheus.Registry

	dhcpReplies   *prometheus.CounterVec
	dhcpIgnored   *prometheus.CounterVec
	dhcpMalformed *prometheus.CounterVec
	tftpTransfers *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpRefused   prometheus.Counter
	phaseSeconds  *prometheus.HistogramVec
	bootSeconds   prometheus.Histogram
	swarm         *swarmCollector
	ages          *ageCollector
}

// Buckets of the phase and boot duration histograms, in seconds: a phase
// takes from a fraction of a second (DHCP) to minutes (a large image on a
// busy rack).
var durationBuckets = []float64{0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200}

// New registers the appliance's collectors in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		dhcpReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moobi_dhcp_replies_total", Help: "Proxy DHCP replies sent, by port and client firmware.",
		}, []string{"port", "firmware"}),
		dhcpIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moobi_dhcp_ignored_total", Help: "DHCP requests left unanswered, by reason.",
		}, []string{"reason"}),
		dhcpMalformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moobi_dhcp_malformed_total", Help: "Packets on the DHCP ports that did not parse as DHCP.",
		}, []string{"port"}),
		tftpTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moobi_tftp_transfers_total", Help: "TFTP read requests, by how they ended (ok, aborted, refused, not-found, failed; outside and busy: dropped unanswered, from outside the boot networks or beyond the transfer limits).",
		}, []string{"result"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moobi_http_requests_total", Help: "HTTP requests, by route and status code.",
		}, []string{"route", "code"}),
		httpRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moobi_http_refused_connections_total", Help: "HTTP connections closed unanswered: their address held the most connections one address may hold open.",
		}),
		phaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "moobi_boot_phase_seconds", Help: "How long nodes spent in each boot state before leaving it.",
			Buckets: durationBuckets,
		}, []string{"phase"}),
		bootSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "moobi_boot_seconds", Help: "Time from a node's first proxy DHCP answer to running.",
			Buckets: durationBuckets,
		}),
	}
	m.swarm = newSwarmCollector(append(append([]string{}, nodeapi.States...), nodes.StateUnknown))
	m.ages = newAgeCollector(nodeapi.States)
	m.Registry.MustRegister(m.swarm, m.ages, m.dhcpReplies, m.dhcpIgnored, m.dhcpMalformed, m.tftpTransfers, m.httpRequests, m.httpRefused, m.phaseSeconds, m.bootSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// DHCPReply implements proxydhcp.Observer.
func (m *Metrics) DHCPReply(_ net.HardwareAddr, d proxydhcp.Decision, port int) {
	m.dhcpReplies.WithLabelValues(strconv.Itoa(port), string(d.Firmware)).Inc()
}

// DHCPIgnored implements proxydhcp.Observer.
func (m *Metrics) DHCPIgnored(code string, _ int) { m.dhcpIgnored.WithLabelValues(code).Inc() }

// DHCPMalformed implements proxydhcp.Observer.
func (m *Metrics) DHCPMalformed(port int) { m.dhcpMalformed.WithLabelValues(strconv.Itoa(port)).Inc() }

// TFTPTransfer implements tftpd.Observer.
func (m *Metrics) TFTPTransfer(_ net.IP, _ string, r tftpd.Result) {
	m.tftpTransfers.WithLabelValues(string(r)).Inc()
}

// HTTPRequest counts one HTTP request.
func (m *Metrics) HTTPRequest(route string, code int) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// HTTPRefused counts an HTTP connection closed unanswered (too many open
// from its address).
func (m *Metrics) HTTPRefused() { m.httpRefused.Inc() }

// PhaseDone implements nodes.Observer.
func (m *Metrics) PhaseDone(state string, d time.Duration) {
	m.phaseSeconds.WithLabelValues(state).Observe(d.Seconds())
}

// BootDone implements nodes.Observer.
func (m *Metrics) BootDone(d time.Duration) { m.bootSeconds.Observe(d.Seconds()) }

// SetSources tells the metrics where to read the seeder's uploads (bytes
// by image) and the node counts (by state) at each scrape.
func (m *Metrics) SetSources(bittorrent func() map[string]int64, nodeStates func() map[string]int) {
	m.swarm.mu.Lock()
	defer m.swarm.mu.Unlock()
	m.swarm.bittorrent, m.swarm.nodeStates = bittorrent, nodeStates
}

// SetSwarmSource tells the metrics where to read each image's swarm
// figures at each scrape.
func (m *Metrics) SetSwarmSource(f func() []Swarm) {
	m.swarm.mu.Lock()
	defer m.swarm.mu.Unlock()
	m.swarm.swarms = f
}

// SetRestSource tells the metrics where to read, by image, how many
// versions have their upload paused, at each scrape.
func (m *Metrics) SetRestSource(f func() map[string]int) {
	m.swarm.mu.Lock()
	defer m.swarm.mu.Unlock()
	m.swarm.rest = f
}

// ApplianceUploaded returns the bytes the appliance uploaded of each image
// since it started, over BitTorrent and as web seed.
func (m *Metrics) ApplianceUploaded() map[string]int64 {
	m.swarm.mu.Lock()
	bt := m.swarm.bittorrent
	out := make(map[string]int64, len(m.swarm.httpSent))
	for k, v := range m.swarm.httpSent {
		out[k] += v
	}
	m.swarm.mu.Unlock()
	if bt != nil {
		for k, v := range bt() {
			out[k] += v
		}
	}
	return out
}

// WebSeedSent counts root filesystem bytes the appliance sent over HTTP.
func (m *Metrics) WebSeedSent(image string, n int64) {
	m.swarm.mu.Lock()
	defer m.swarm.mu.Unlock()
	m.swarm.httpSent[image] += n
}
