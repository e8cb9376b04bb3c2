package nodes

import "moobi/nodeapi"

// Observation is something the appliance learnt of a node: what a boot
// service saw (a proxy DHCP request, a DHCP request's address, a TFTP or
// HTTP fetch) or an event the node posted.
type Observation struct {
	// State is the state the observation implies (dhcp, firmware, kernel
	// for a boot service; any state for an event); "" when it only names
	// an address (a DHCP request).
	State string
	// What describes it, as the event log shows it.
	What string
	// From is the address the observation came from, when the appliance
	// knows it: the client of a TFTP or HTTP fetch, or of an event. ""
	// for DHCP-stage packets, whose addresses prove nothing.
	From string
	// Address is the address the observation gives the node ("" none).
	Address string
	// Authenticated: it came with a boot token the appliance issued for
	// the node's MAC, used from the address it was first used from (an
	// event the node posted, see package boottoken).
	Authenticated bool
}

// Decision is what an observation does to a node.
type Decision struct {
	// Apply: the node moves to the observation's State (when set) and
	// Address (when set), as the boot services and the node said.
	Apply bool
	// NewBoot: the observation begins a new boot of the node (a new
	// timeline), whatever its state. (An observation of dhcp always does.)
	NewBoot bool
	// Note, when Apply is false, is what the node's event log records
	// instead ("" nothing): what was seen, from where, and that it
	// changed nothing.
	Note string
}

// Reported reports whether a node in state has reported in its current
// boot: fetching, verified, running, degraded and failed are states only
// a node's own events, which carry its boot token, set.
func Reported(state string) bool {
	switch state {
	case nodeapi.StateFetching, nodeapi.StateVerified, nodeapi.StateRunning, nodeapi.StateDegraded, nodeapi.StateFailed:
		return true
	}
	return false
}

// Booted reports whether a node in state booted from the appliance: its
// initramfs reports these states only after it verified a signed boot
// config.
func Booted(state string) bool {
	switch state {
	case nodeapi.StateFetching, nodeapi.StateVerified, nodeapi.StateRunning, nodeapi.StateDegraded:
		return true
	}
	return false
}

// Decide says what observation o does to the node cur.
//
// Once the node's current boot has reported (Reported), its state and
// address follow its authenticated events only: anyone on the boot network
// can fetch a node's boot script, or send a proxy DHCP request naming its
// MAC, and those would otherwise show the node as booting again, at the
// sender's address, and stop its real address from counting as booted
// (see Registry.BootedAt) while it runs. Such observations are noted in
// the node's event log and change nothing else.
//
// One exception keeps a real reboot visible before the node reports
// again: a fetch from the node's own current address (it keeps its lease
// across a reboot) begins a new boot in the state the fetch implies. A
// host that can send from that address is the node, or stands in its
// place on the network. DHCP-stage packets are never that proof: they
// carry no address of their own (a proxy DHCP request, a DHCP request's
// requested address are whatever the sender wrote). A node that reboots
// with another address shows its new boot at its first event.
func Decide(cur Node, o Observation) Decision {
	switch {
	case o.Authenticated:
		// A node that reports fetching while the previous report said it
		// runs its image booted again (with an address the appliance
		// did not see, or the observations of its reboot were noted
		// only).
		again := o.State == nodeapi.StateFetching && (cur.State == nodeapi.StateRunning || cur.State == nodeapi.StateDegraded)
		return Decision{Apply: true, NewBoot: again}
	case !Reported(cur.State):
		return Decision{Apply: true}
	case o.State == "":
		if o.Address == "" || o.Address == cur.Address {
			return Decision{}
		}
		return Decision{Note: o.What + " (unauthenticated; address kept)"}
	case o.From != "" && o.From == cur.Address:
		return Decision{Apply: true, NewBoot: true}
	}
	from := ""
	if o.From != "" {
		from = " from " + o.From
	}
	return Decision{Note: o.What + from + " (unauthenticated; state kept)"}
}

// BootedAt reports whether a node that booted from the appliance (Booted)
// uses addr (an IP) in its current boot. Such a node's state and address
// follow its authenticated events only (see Decide), so neither a fetch
// naming it from another host nor a DHCP request naming another node at
// its address takes its address out of the booted set: any node at addr
// that booted counts, not only the one updated last.
func (r *Registry) BootedAt(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.addrs[addr] {
		if Booted(e.State) {
			return true
		}
	}
	return false
}
