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
	"container/list"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"moobi/inventory"
	"moobi/nodeapi"
	"moobi/power"
)

// StateUnknown is the state of a host the appliance has not seen yet.
const StateUnknown = "unknown"

// Bounds on what is kept per node, and on the nodes kept.
const (
	MaxPhases = 32
	MaxEvents = 40
	// MaxNodes bounds the registry: past it, the nodes updated longest ago
	// are forgotten, those not in the inventory first (see
	// Registry.Listed). A DHCP storm from random MACs cannot grow it
	// without end.
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
	FromPeers int64 `json:"from_peers,omitempty"`     // from other nodes
	FromApp   int64 `json:"from_appliance,omitempty"` // from the appliance's seeder (BitTorrent)
	FromSeed  int64 `json:"from_webseed,omitempty"`   // from the appliance's web seed (HTTP)
	Reused    int64 `json:"reused,omitempty"`
	// BootStarted is when the current boot began (its first phase).
	BootStarted time.Time `json:"boot_started,omitzero"`
	Boots       int       `json:"boots,omitempty"`
	Phases      []Phase   `json:"phases,omitempty"`
	// Power is the host's power as its BMC last reported it (see package
	// power/poller), for hosts with a bmc in hosts.yaml; the registry
	// never sets it: the HTTP views add it.
	Power *power.Reading `json:"power,omitempty"`
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
	// Listed, if set, reports whether the inventory lists the node with
	// this MAC (as "52:54:00:12:34:01") in hosts.yaml, as opposed to
	// booting it as an unknown host or not at all. Nodes it does not list
	// are forgotten first, and are not saved while proxy DHCP is all that
	// was seen of them (see Save). Unset, a node is listed if it has a
	// name. Set it before use.
	Listed func(mac string) bool

	mu    sync.Mutex
	nodes map[string]*entry // by MAC
	// addrs indexes the nodes by Address: usually one per address, two
	// or more while an older lease's node still holds it.
	addrs map[string][]*entry
	// order holds the nodes in the order they are forgotten in: the
	// unlisted ones ([0]), then the others ([1]), each updated longest ago
	// first.
	order   [2]list.List // of *entry
	seq     uint64
	changed chan struct{}       // nil until Changed asks for it
	dirty   map[string]struct{} // MACs the next Save must look at

	save saveState // Save's own, under save.mu
	now  func() time.Time
}

// entry is a node as the registry holds it.
type entry struct {
	Node
	elem *list.Element // e's place in the registry's order
	// unlisted: the inventory does not list the node (see Registry.Listed).
	unlisted bool
	// saved: the saved state holds the node (see Save).
	saved bool
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{nodes: map[string]*entry{}, addrs: map[string][]*entry{}, dirty: map[string]struct{}{}, now: time.Now}
}

// node returns the node with mac, recording it if it is new. r.mu is held.
func (r *Registry) node(mac net.HardwareAddr, name string) *entry {
	key := mac.String()
	e := r.nodes[key]
	if e == nil {
		if len(r.nodes) >= MaxNodes {
			r.evict()
		}
		e = &entry{Node: Node{MAC: key, State: StateUnknown, Name: name}}
		e.unlisted = r.unlisted(e)
		r.nodes[key] = e
		insertByTime(&r.order[e.rank()], e)
		return e
	}
	if name != "" {
		e.Name = name
	}
	if u := r.unlisted(e); u != e.unlisted {
		removeFrom(&r.order[e.rank()], e)
		e.unlisted = u
		insertByTime(&r.order[e.rank()], e)
	}
	return e
}

// unlisted reports whether the inventory does not list e.
func (r *Registry) unlisted(e *entry) bool {
	if r.Listed != nil {
		return !r.Listed(e.MAC)
	}
	return e.Name == ""
}

// rank is e's list in the registry's order: unlisted nodes are forgotten
// first.
func (e *entry) rank() int {
	if e.unlisted {
		return 0
	}
	return 1
}

// evict forgets the node that goes first: unlisted, updated longest ago.
// r.mu is held.
func (r *Registry) evict() {
	front := r.order[0].Front()
	if front == nil {
		front = r.order[1].Front()
	}
	if front == nil {
		return
	}
	e := front.Value.(*entry)
	removeFrom(&r.order[e.rank()], e)
	delete(r.nodes, e.MAC)
	r.unindex(e)
	if e.saved {
		r.dirty[e.MAC] = struct{}{}
	}
}

// setAddress sets e's address and keeps the address index. r.mu is held.
func (r *Registry) setAddress(e *entry, addr string) {
	if e.Address == addr {
		return
	}
	r.unindex(e)
	e.Address = addr
	r.index(e)
}

// index adds e to the address index. r.mu is held.
func (r *Registry) index(e *entry) {
	if e.Address != "" {
		r.addrs[e.Address] = append(r.addrs[e.Address], e)
	}
}

// unindex removes e from the address index. r.mu is held.
func (r *Registry) unindex(e *entry) {
	if e.Address == "" {
		return
	}
	at := slices.DeleteFunc(r.addrs[e.Address], func(o *entry) bool { return o == e })
	if len(at) == 0 {
		delete(r.addrs, e.Address)
	} else {
		r.addrs[e.Address] = at
	}
}

// updated sets e's update time to now and moves it in the registry's
// order. r.mu is held.
func (r *Registry) updated(e *entry, now time.Time) {
	l := &r.order[e.rank()]
	removeFrom(l, e)
	e.Updated = now
	insertByTime(l, e)
}

// touch marks e changed, wakes Changed's waiters and tells the next Save
// to look at it. r.mu is held.
func (r *Registry) touch(e *entry) {
	r.seq++
	e.Seq = r.seq
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	if e.saved || !e.transient() {
		r.dirty[e.MAC] = struct{}{}
	}
}

// transient reports whether e is left out of the saved state: a node the
// inventory does not list, of which the proxy DHCP answer of a first boot
// is all that was seen (a DHCP storm of random MACs under unknown_hosts is
// made of these). Once it goes further (TFTP, a script, an event), or boots
// again, it is saved.
func (e *entry) transient() bool {
	return e.unlisted && e.Boots <= 1 && len(e.Phases) <= 1 &&
		(e.State == nodeapi.StateDHCP || e.State == StateUnknown) &&
		e.Address == "" && e.LastError == "" && e.Image == ""
}

// Changed returns a channel closed at the next change of any node.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// insertByTime places e in l by its update time: at the front if it has
// none, otherwise searching from the back (updates come in time order, so
// the search stops at once).
func insertByTime(l *list.List, e *entry) {
	if e.Updated.IsZero() {
		e.elem = l.PushFront(e)
		return
	}
	at := l.Back() // e goes after at
	for at != nil && at.Value.(*entry).Updated.After(e.Updated) {
		at = at.Prev()
	}
	if at == nil {
		e.elem = l.PushFront(e)
		return
	}
	e.elem = l.InsertAfter(e, at)
}

// removeFrom takes e out of l.
func removeFrom(l *list.List, e *entry) {
	if e.elem != nil {
		l.Remove(e.elem)
		e.elem = nil
	}
}

// Seq returns the sequence number of the latest change.
func (r *Registry) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// enter moves n to state at now, closing the open phase and starting a new
// boot when the node starts over with DHCP, or when newBoot says it booted
// again (see Decide). It reports whether the state changed. r.mu is held.
func (r *Registry) enter(n *Node, state string, now time.Time, newBoot bool) bool {
	if n.State == state && len(n.Phases) > 0 && !newBoot {
		return false
	}
	if state == nodeapi.StateDHCP || len(n.Phases) == 0 || newBoot {
		// A node that does firmware DHCP again after any other state is
		// rebooting: a new boot, a new timeline.
		r.closePhase(n, now)
		n.Phases = nil
		n.BootStarted = now
		n.Boots++
		n.Done, n.Total, n.FromPeers, n.FromApp, n.FromSeed, n.Reused = 0, 0, 0, 0, 0, 0
	}
	r.closePhase(n, now)
	if len(n.Phases) == MaxPhases {
		n.Phases = append(n.Phases[:0], n.Phases[1:]...)
	}
	n.Phases = append(n.Phases, Phase{State: state, Start: now})
	if (state == nodeapi.StateRunning || state == nodeapi.StateDegraded) && r.Observer != nil && !n.BootStarted.IsZero() {
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
	e.Message, e.Reason = clipText(e.Message, MaxTextBytes), clipText(e.Reason, MaxTextBytes)
	n.Events = append(n.Events, e)
	n.trimLog()
}

// Seen records what a boot service saw of a node: a state and a short
// description (e.g. "proxy DHCP offer: ipxe.efi"), and the address of the
// client it saw when the service knows it (a fetch naming the node's MAC).
// It is unauthenticated: see Decide for what it changes.
func (r *Registry) Seen(mac net.HardwareAddr, name, state, what, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen(r.node(mac, name), Observation{State: state, What: what, From: addr, Address: addr})
}

// SeenDHCP is Seen for a proxy DHCP answer: state is dhcp, or firmware
// if iPXE asks for its script and the node is in the firmware stage (it
// is the same boot, its firmware loaded iPXE over TFTP).
func (r *Registry) SeenDHCP(mac net.HardwareAddr, name string, ipxe bool, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.node(mac, name)
	state := nodeapi.StateDHCP
	if ipxe && e.State == nodeapi.StateFirmware {
		state = nodeapi.StateFirmware
	}
	r.seen(e, Observation{State: state, What: what})
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
	r.seen(n, Observation{State: state, What: what, From: addr})
	return true
}

// seen records a boot service's observation of e, or only notes it (see
// Decide). r.mu is held.
func (r *Registry) seen(e *entry, o Observation) {
	d := Decide(e.Node, o)
	if !d.Apply {
		r.note(e, d.Note)
		return
	}
	state, what, addr := o.State, o.What, o.Address
	now := r.now()
	n := &e.Node
	what = clipText(what, MaxTextBytes)
	changed := r.enter(n, state, now, d.NewBoot)
	if changed || n.LastEvent != what {
		n.log(Entry{Time: now, Source: "appliance", State: state, Message: what})
	}
	n.LastEvent = what
	r.updated(e, now)
	if state != nodeapi.StateFailed {
		n.Reason = ""
	}
	if addr != "" {
		r.setAddress(e, addr)
	}
	r.touch(e)
}

// note records in e's event log an observation that changed nothing (see
// Decide), once per kind and address until the node reports again: an
// attacker repeating it does not push the node's own events out of the log.
// It changes neither the node's state, address, last event nor update time.
// r.mu is held.
func (r *Registry) note(e *entry, msg string) {
	if msg == "" {
		return
	}
	msg = clipText(msg, MaxTextBytes)
	for i := len(e.Events) - 1; i >= 0 && e.Events[i].Source != "node"; i-- {
		if e.Events[i].Message == msg {
			return
		}
	}
	e.log(Entry{Time: r.now(), Source: "appliance", State: e.State, Message: msg})
	r.touch(e)
}

// Report records an event a node posted about itself, with its boot token
// (the caller checked it): it is authenticated.
func (r *Registry) Report(mac net.HardwareAddr, name string, e nodeapi.Event, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ent := r.node(mac, name)
	n := &ent.Node
	for _, f := range []*string{&e.Message, &e.Reason, &e.Image, &e.Version} {
		*f = clipText(*f, MaxTextBytes)
	}
	d := Decide(*n, Observation{State: e.State, From: addr, Address: addr, Authenticated: true})
	changed := r.enter(n, e.State, now, d.NewBoot)
	msg := e.Message
	if msg == "" {
		msg = e.State
	}
	if changed || e.Reason != "" || msg != n.LastEvent && e.State != nodeapi.StateFetching {
		n.log(Entry{Time: now, Source: "node", State: e.State, Message: e.Message, Reason: e.Reason})
	}
	n.LastEvent, n.Reason = msg, e.Reason
	r.updated(ent, now)
	if e.State == nodeapi.StateFailed && e.Reason != "" {
		n.LastError, n.LastErrorTime = e.Reason, now
	}
	if e.Image != "" {
		n.Image, n.Version = e.Image, e.Version
	}
	if e.Total > 0 {
		n.Done, n.Total, n.FromPeers, n.FromApp, n.FromSeed, n.Reused = e.Done, e.Total, e.FromPeers, e.FromApp, e.FromSeed, e.Reused
	}
	if addr != "" {
		r.setAddress(ent, addr)
	}
	r.touch(ent)
}

// Addressed records the address a node asked the site DHCP server for
// (seen in its DHCPREQUEST): the address it boots with. It is
// unauthenticated: a node whose boot has reported keeps its address (see
// Decide).
func (r *Registry) Addressed(mac net.HardwareAddr, name string, addr netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.node(mac, name)
	a := addr.String()
	if d := Decide(n.Node, Observation{What: "DHCP request for " + a, Address: a}); !d.Apply {
		r.note(n, d.Note)
		return
	}
	if n.Address != a {
		r.setAddress(n, a)
		r.touch(n)
	}
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
		if seen := r.nodes[n.MAC]; seen != nil {
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

// Counts returns how many nodes List would return in each state: every
// node seen, and the hosts of inv never seen (unknown). It copies nothing,
// for a metrics scrape.
func (r *Registry) Counts(inv *inventory.Inventory) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := map[string]int{}
	for _, e := range r.nodes {
		c[e.State]++
	}
	for _, h := range inv.Hosts {
		if _, seen := r.nodes[h.MAC.String()]; !seen {
			c[StateUnknown]++
		}
	}
	return c
}

// ByAddress returns the MAC and name of the node last seen at addr (an IP).
func (r *Registry) ByAddress(addr string) (mac, name string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.byAddress(addr); e != nil {
		return e.MAC, e.Name, true
	}
	return "", "", false
}

// byAddress returns the node at addr: the most recently updated one, as
// another node may still hold the address from an older lease. r.mu is
// held.
func (r *Registry) byAddress(addr string) *entry {
	var best *entry
	for _, e := range r.addrs[addr] {
		if best == nil || e.Updated.After(best.Updated) {
			best = e
		}
	}
	return best
}
