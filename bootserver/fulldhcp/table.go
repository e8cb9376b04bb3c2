package fulldhcp

import (
	"net/netip"
	"time"
)

// Table is the server's address state: leases bound to clients (kept in
// the lease file), offers not yet requested, and addresses that must not
// be handed out for a while (declined by a client, or found answering
// before an offer). Decide reads it; only the server changes it, with
// Apply, one decision at a time.
type Table struct {
	byMAC  map[string]*entry
	byAddr map[netip.Addr]*entry
	bad    map[netip.Addr]time.Time
}

type entry struct {
	mac     string
	addr    netip.Addr
	expires time.Time
	// bound is a lease (ACKed); otherwise an offer.
	bound bool
}

// NewTable returns a table holding leases.
func NewTable(leases []Lease) *Table {
	t := &Table{byMAC: map[string]*entry{}, byAddr: map[netip.Addr]*entry{}, bad: map[netip.Addr]time.Time{}}
	for _, l := range leases {
		t.put(&entry{mac: l.MAC, addr: l.Addr, expires: l.Expires, bound: true})
	}
	return t
}

func (t *Table) put(e *entry) {
	t.drop(e.mac)
	if old := t.byAddr[e.addr]; old != nil {
		delete(t.byMAC, old.mac)
	}
	t.byMAC[e.mac] = e
	t.byAddr[e.addr] = e
}

func (t *Table) drop(mac string) {
	if old := t.byMAC[mac]; old != nil {
		delete(t.byMAC, mac)
		if t.byAddr[old.addr] == old {
			delete(t.byAddr, old.addr)
		}
	}
}

// Leases returns the bound leases, expired ones included (a client that
// comes back gets its address again while no other took it).
func (t *Table) Leases() []Lease {
	var out []Lease
	for _, e := range t.byMAC {
		if e.bound {
			out = append(out, Lease{MAC: e.mac, Addr: e.addr, Expires: e.expires})
		}
	}
	return out
}

// Lease returns mac's lease or offer.
func (t *Table) lookup(mac string) (entry, bool) {
	e := t.byMAC[mac]
	if e == nil {
		return entry{}, false
	}
	return *e, true
}

// holder returns the entry holding addr, if any.
func (t *Table) holder(addr netip.Addr) (entry, bool) {
	e := t.byAddr[addr]
	if e == nil {
		return entry{}, false
	}
	return *e, true
}

// isBad reports whether addr is declined or was found in use until after now.
func (t *Table) isBad(addr netip.Addr, now time.Time) bool {
	until, ok := t.bad[addr]
	return ok && now.Before(until)
}

// ChangeKind is what a decision does to the table.
type ChangeKind int

// Changes a decision makes.
const (
	ChangeNone ChangeKind = iota
	// ChangeOffer holds Addr for MAC until Until (not written to disk).
	ChangeOffer
	// ChangeBind binds Addr to MAC until Until (a lease, written to disk).
	ChangeBind
	// ChangeFree frees MAC's lease (RELEASE).
	ChangeFree
	// ChangeBad frees MAC's lease and keeps Addr from being handed out
	// until Until (DECLINE, or an address found answering a probe).
	ChangeBad
)

// Change is the table change a decision asks for.
type Change struct {
	Kind  ChangeKind
	MAC   string
	Addr  netip.Addr
	Until time.Time
}

// Apply makes a change. It reports whether the bound leases changed (the
// lease file must be written before replies go out).
func (t *Table) Apply(c Change) (leasesChanged bool) {
	switch c.Kind {
	case ChangeOffer:
		if e := t.byMAC[c.MAC]; e != nil && e.bound && e.addr == c.Addr {
			return false // a client re-discovering keeps its lease
		}
		t.put(&entry{mac: c.MAC, addr: c.Addr, expires: c.Until})
		return false
	case ChangeBind:
		t.put(&entry{mac: c.MAC, addr: c.Addr, expires: c.Until, bound: true})
		return true
	case ChangeFree:
		e := t.byMAC[c.MAC]
		t.drop(c.MAC)
		return e != nil && e.bound
	case ChangeBad:
		t.bad[c.Addr] = c.Until
		e := t.byMAC[c.MAC]
		if e != nil && e.addr == c.Addr {
			t.drop(c.MAC)
			return e.bound
		}
		if h := t.byAddr[c.Addr]; h != nil && !h.bound {
			t.drop(h.mac)
		}
	}
	return false
}
