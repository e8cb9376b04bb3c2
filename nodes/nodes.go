// Package nodes keeps what the appliance knows of each node's boot: its
// state, when it last changed, the last event and the download figures the
// node reported. The boot services record what they see (DHCP, iPXE
// script, kernel fetches); nodes report the rest themselves.
package nodes

import (
	"net"
	"sort"
	"sync"
	"time"

	"moobi/inventory"
	"moobi/nodeapi"
)

// StateUnknown is the state of a host the appliance has not seen yet.
const StateUnknown = "unknown"

// Node is one node's boot status, as served at /v1/nodes.
type Node struct {
	Name      string    `json:"name"`
	MAC       string    `json:"mac"`
	State     string    `json:"state"`
	Updated   time.Time `json:"updated"`
	LastEvent string    `json:"last_event"`
	Reason    string    `json:"reason,omitempty"`
	Address   string    `json:"address,omitempty"`
	Image     string    `json:"image,omitempty"`
	Version   string    `json:"version,omitempty"`
	Done      int64     `json:"done,omitempty"`
	Total     int64     `json:"total,omitempty"`
	FromPeers int64     `json:"from_peers,omitempty"`
	FromSeed  int64     `json:"from_webseed,omitempty"`
	Reused    int64     `json:"reused,omitempty"`
}

// Registry holds every node's status. It is safe for concurrent use.
type Registry struct {
	mu    sync.Mutex
	nodes map[string]*Node // by MAC
	now   func() time.Time
}

// New returns an empty registry.
func New() *Registry { return &Registry{nodes: map[string]*Node{}, now: time.Now} }

func (r *Registry) node(mac net.HardwareAddr, name string) *Node {
	n := r.nodes[mac.String()]
	if n == nil {
		n = &Node{MAC: mac.String(), State: StateUnknown}
		r.nodes[mac.String()] = n
	}
	if name != "" {
		n.Name = name
	}
	return n
}

// Seen records what a boot service saw of a node: a state and a short
// description (e.g. "proxy DHCP offer: ipxe.efi").
func (r *Registry) Seen(mac net.HardwareAddr, name, state, what, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.node(mac, name)
	n.State, n.LastEvent, n.Updated = state, what, r.now()
	if state != nodeapi.StateFailed {
		n.Reason = ""
	}
	if addr != "" {
		n.Address = addr
	}
}

// Report records an event a node posted about itself.
func (r *Registry) Report(mac net.HardwareAddr, name string, e nodeapi.Event, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.node(mac, name)
	n.State, n.Updated = e.State, r.now()
	n.LastEvent = e.State
	if e.Message != "" {
		n.LastEvent = e.Message
	}
	n.Reason = e.Reason
	if e.Image != "" {
		n.Image, n.Version = e.Image, e.Version
	}
	if e.Total > 0 {
		n.Done, n.Total, n.FromPeers, n.FromSeed, n.Reused = e.Done, e.Total, e.FromPeers, e.FromSeed, e.Reused
	}
	if addr != "" {
		n.Address = addr
	}
}

// List returns every host of inv (seen or not) and every other node seen,
// sorted by name then MAC.
func (r *Registry) List(inv *inventory.Inventory) []Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Node, 0, len(r.nodes)+len(inv.Hosts))
	listed := map[string]bool{}
	for _, h := range inv.Hosts {
		n := Node{Name: h.Name, MAC: h.MAC.String(), State: StateUnknown}
		if seen := r.nodes[h.MAC.String()]; seen != nil {
			n = *seen
			n.Name = h.Name
		}
		listed[n.MAC] = true
		out = append(out, n)
	}
	for mac, n := range r.nodes {
		if !listed[mac] {
			out = append(out, *n)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].MAC < out[j].MAC
	})
	return out
}

// Get returns one node's status.
func (r *Registry) Get(mac net.HardwareAddr) (Node, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.nodes[mac.String()]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Counts returns how many nodes of inv are in each state.
func (r *Registry) Counts(inv *inventory.Inventory) map[string]int {
	c := map[string]int{}
	for _, n := range r.List(inv) {
		c[n.State]++
	}
	return c
}

// ByAddress returns the MAC and name of the node last seen at addr (an IP).
func (r *Registry) ByAddress(addr string) (mac, name string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.nodes {
		if n.Address == addr {
			return n.MAC, n.Name, true
		}
	}
	return "", "", false
}
