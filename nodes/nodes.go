// Package nodes keeps what the appliance knows of each node's boot: its
// state, the timeline of the current boot (one phase per state, with when it
// started and how long it took), the last events, the download figures the
// node reported and the last error. The boot services record what they see
// (DHCP, iPXE script, kernel fetches); nodes report the rest themselves.
//
// The registry can be saved to and restored from a file (see Persist), so a
// restarted appliance still shows where every node was.
package nodes

import (
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"moobi/inventory"
	"moobi/nodeapi"
)

// StateUnknown is the state of a host the appliance has not seen yet.
const StateUnknown = "unknown"

// Bounds on what is kept per node, and on the nodes kept.
const (
	MaxPhases = 32
	MaxEvents = 40
	// MaxNodes bounds the registry: past it, the nodes updated longest ago
	// are forgotten, those not in the inventory (no name) first. A DHCP
	// storm from random MACs cannot grow it without end.
	MaxNodes = 10000
)

// Phase is one state of a boot: when the node entered it and, once it left
// it, when. Seconds is the phase's duration (up to now for the open one).
type Phase struct {
	State   string    `json:"state"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	Seconds float64   `json:"seconds"`
}

// Entry is one line of a node's event log.
type Entry struct {
	Time time.Time `json:"time"`
	// Source is "appliance" for what a boot service saw, "node" for what the
	// node reported.
	Source  string `json:"source"`
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Node is one node's boot status, as served at /v1/nodes.
type Node struct {
	Name      string    `json:"name"`
	MAC       string    `json:"mac"`
	State     string    `json:"state"`
	Updated   time.Time `json:"updated,omitzero"`
	LastEvent string    `json:"last_event"`
	// Reason says why the node failed, while it is failed.
	Reason string `json:"reason,omitempty"`
	// LastError is the last failure reason, kept after the node recovered.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Address is the IPv4 address the node uses in this boot.
	Address string `json:"address,omitempty"`
	Image   string `json:"image,omitempty"`
	Version string `json:"version,omitempty"`
	// Download figures of the current boot, in bytes.
	Done      int64 `json:"done,omitempty"`
	Total     int64 `json:"total,omitempty"`
	FromPeers int64 `json:"from_peers,omitempty"`
	FromSeed  int64 `json:"from_webseed,omitempty"`
	Reused    int64 `json:"reused,omitempty"`
	// BootStarted is when the current boot began (its first phase).
	BootStarted time.Time `json:"boot_started,omitzero"`
	Boots       int       `json:"boots,omitempty"`
	Phases      []Phase   `json:"phases,omitempty"`
	// Events is the recent event log (newest last); only /v1/nodes/{mac}
	// carries it.
	Events []Entry `json:"events,omitempty"`
	// Seq increases with every change to the node (for live updates).
	Seq uint64 `json:"seq"`
}

// Observer is told of finished phases and boots, for metrics.
type Observer interface {
	// PhaseDone reports that a node left state after d.
	PhaseDone(state string, d time.Duration)
	// BootDone reports a node reaching running, d after its boot began.
	BootDone(d time.Duration)
}

// Registry holds every node's status. It is safe for concurrent use.
type Registry struct {
	// Observer, if set, is told of finished phases. Set it before use.
	Observer Observer

	mu      sync.Mutex
	nodes   map[string]*Node // by MAC
	seq     uint64
	changed chan struct{}
	now     func() time.Time
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{nodes: map[string]*Node{}, now: time.Now, changed: make(chan struct{})}
}

func (r *Registry) node(mac net.HardwareAddr, name string) *Node {
	n := r.nodes[mac.String()]
	if n == nil {
		if len(r.nodes) >= MaxNodes {
			r.evict(MaxNodes / 10)
		}
		n = &Node{MAC: mac.String(), State: StateUnknown}
		r.nodes[mac.String()] = n
	}
	if name != "" {
		n.Name = name
	}
	return n
}

// evict forgets k nodes: nameless ones (not in the inventory) first, each
// group oldest first. r.mu is held.
func (r *Registry) evict(k int) {
	all := make([]*Node, 0, len(r.nodes))
	for _, n := range r.nodes {
		all = append(all, n)
	}
	sort.Slice(all, func(i, j int) bool {
		if (all[i].Name == "") != (all[j].Name == "") {
			return all[i].Name == ""
		}
		return all[i].Updated.Before(all[j].Updated)
	})
	for _, n := range all[:min(k, len(all))] {
		delete(r.nodes, n.MAC)
	}
}

// touch marks n changed and wakes Changed's waiters. r.mu is held.
func (r *Registry) touch(n *Node) {
	r.seq++
	n.Seq = r.seq
	close(r.changed)
	r.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of any node.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Seq returns the sequence number of the latest change.
func (r *Registry) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// enter moves n to state at now, closing the open phase and starting a new
// boot when the node starts over with DHCP. It reports whether the state
// changed. r.mu is held.
func (r *Registry) enter(n *Node, state string, now time.Time) bool {
	if n.State == state && len(n.Phases) > 0 {
		return false
	}
	if state == nodeapi.StateDHCP || len(n.Phases) == 0 {
		// A node that does firmware DHCP again after any other state is
		// rebooting: a new boot, a new timeline.
		r.closePhase(n, now)
		n.Phases = nil
		n.BootStarted = now
		n.Boots++
		n.Done, n.Total, n.FromPeers, n.FromSeed, n.Reused = 0, 0, 0, 0, 0
	}
	r.closePhase(n, now)
	if len(n.Phases) == MaxPhases {
		n.Phases = append(n.Phases[:0], n.Phases[1:]...)
	}
	n.Phases = append(n.Phases, Phase{State: state, Start: now})
	if state == nodeapi.StateRunning && r.Observer != nil && !n.BootStarted.IsZero() {
		r.Observer.BootDone(now.Sub(n.BootStarted))
	}
	n.State = state
	return true
}

func (r *Registry) closePhase(n *Node, now time.Time) {
	if len(n.Phases) == 0 {
		return
	}
	p := &n.Phases[len(n.Phases)-1]
	if !p.End.IsZero() {
		return
	}
	p.End = now
	p.Seconds = now.Sub(p.Start).Seconds()
	if r.Observer != nil {
		r.Observer.PhaseDone(p.State, now.Sub(p.Start))
	}
}

func (n *Node) log(e Entry) {
	if len(n.Events) == MaxEvents {
		n.Events = append(n.Events[:0], n.Events[1:]...)
	}
	n.Events = append(n.Events, e)
}

// Seen records what a boot service saw of a node: a state and a short
// description (e.g. "proxy DHCP offer: ipxe.efi"), and the node's address
// when the service knows it.
func (r *Registry) Seen(mac net.HardwareAddr, name, state, what, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen(r.node(mac, name), state, what, addr)
}

// SeenAt is Seen for a service that knows only the client's address (a
// TFTP or HTTP fetch): it records it for the node at addr (see ByAddress),
// and reports whether there was one.
func (r *Registry) SeenAt(addr, state, what string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.byAddress(addr)
	if n == nil {
		return false
	}
	r.seen(n, state, what, "")
	return true
}

// seen records a boot service's observation of n. r.mu is held.
func (r *Registry) seen(n *Node, state, what, addr string) {
	now := r.now()
	changed := r.enter(n, state, now)
	if changed || n.LastEvent != what {
		n.log(Entry{Time: now, Source: "appliance", State: state, Message: what})
	}
	n.LastEvent, n.Updated = what, now
	if state != nodeapi.StateFailed {
		n.Reason = ""
	}
	if addr != "" {
		n.Address = addr
	}
	r.touch(n)
}

// Report records an event a node posted about itself.
func (r *Registry) Report(mac net.HardwareAddr, name string, e nodeapi.Event, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	n := r.node(mac, name)
	changed := r.enter(n, e.State, now)
	msg := e.Message
	if msg == "" {
		msg = e.State
	}
	if changed || e.Reason != "" || msg != n.LastEvent && e.State != nodeapi.StateFetching {
		n.log(Entry{Time: now, Source: "node", State: e.State, Message: e.Message, Reason: e.Reason})
	}
	n.Updated, n.LastEvent, n.Reason = now, msg, e.Reason
	if e.State == nodeapi.StateFailed && e.Reason != "" {
		n.LastError, n.LastErrorTime = e.Reason, now
	}
	if e.Image != "" {
		n.Image, n.Version = e.Image, e.Version
	}
	if e.Total > 0 {
		n.Done, n.Total, n.FromPeers, n.FromSeed, n.Reused = e.Done, e.Total, e.FromPeers, e.FromSeed, e.Reused
	}
	if addr != "" {
		n.Address = addr
	}
	r.touch(n)
}

// Addressed records the address a node asked the site DHCP server for
// (seen in its DHCPREQUEST): the address it boots with.
func (r *Registry) Addressed(mac net.HardwareAddr, name string, addr netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.node(mac, name)
	if n.Address == addr.String() {
		return
	}
	n.Address = addr.String()
	r.touch(n)
}

// Bind checks that addr may act for the node with mac in this boot: it may
// if it is the node's known address, or if no address is known yet (then
// addr becomes it). It returns the address the node is bound to.
func (r *Registry) Bind(mac net.HardwareAddr, name, addr string) (bound string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.node(mac, name)
	if n.Address == "" {
		n.Address = addr
		r.touch(n)
	}
	return n.Address, n.Address == addr
}

// snapshot copies n with its open phase's duration up to now.
func (n *Node) snapshot(now time.Time, events bool) Node {
	c := *n
	c.Phases = append([]Phase(nil), n.Phases...)
	if k := len(c.Phases) - 1; k >= 0 && c.Phases[k].End.IsZero() {
		c.Phases[k].Seconds = now.Sub(c.Phases[k].Start).Seconds()
	}
	c.Events = nil
	if events {
		c.Events = append([]Entry(nil), n.Events...)
	}
	return c
}

// List returns every host of inv (seen or not) and every other node seen,
// sorted by name then MAC, without their event logs.
func (r *Registry) List(inv *inventory.Inventory) []Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	out := make([]Node, 0, len(r.nodes)+len(inv.Hosts))
	listed := map[string]bool{}
	for _, h := range inv.Hosts {
		n := Node{Name: h.Name, MAC: h.MAC.String(), State: StateUnknown}
		if seen := r.nodes[h.MAC.String()]; seen != nil {
			n = seen.snapshot(now, false)
			n.Name = h.Name
		}
		listed[n.MAC] = true
		out = append(out, n)
	}
	for mac, n := range r.nodes {
		if !listed[mac] {
			out = append(out, n.snapshot(now, false))
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

// Get returns one node's status with its event log; a host of inv that was
// never seen is returned in state unknown.
func (r *Registry) Get(inv *inventory.Inventory, mac net.HardwareAddr) (Node, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := ""
	if h, _, ok := inv.Lookup(mac); ok {
		name = h.Name
	}
	n, ok := r.nodes[mac.String()]
	if !ok {
		if name == "" {
			return Node{}, false
		}
		return Node{Name: name, MAC: mac.String(), State: StateUnknown}, true
	}
	c := n.snapshot(r.now(), true)
	if name != "" {
		c.Name = name
	}
	return c, true
}

// State returns the state of the node with mac ("" if never seen).
func (r *Registry) State(mac net.HardwareAddr) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.nodes[mac.String()]; n != nil {
		return n.State
	}
	return ""
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
	if n := r.byAddress(addr); n != nil {
		return n.MAC, n.Name, true
	}
	return "", "", false
}

// byAddress returns the node at addr: the most recently updated one, as
// another node may still hold the address from an older lease. r.mu is
// held.
func (r *Registry) byAddress(addr string) *Node {
	var best *Node
	for _, n := range r.nodes {
		if n.Address == addr && (best == nil || n.Updated.After(best.Updated)) {
			best = n
		}
	}
	return best
}
