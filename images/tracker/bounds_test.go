package tracker

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// realNodes are the booted nodes of the takeover tests: 10.0.0.2-9.
func realNodes() []string {
	var out []string
	for i := 2; i <= 9; i++ {
		out = append(out, fmt.Sprintf("10.0.0.%d:6881", i))
	}
	return out
}

// bootedReal is Options.Booted as the appliance wires it: the real nodes
// and the newcomer 10.0.0.10 fetched a signed boot config, nothing else did.
func bootedReal(a netip.Addr) bool {
	b := a.As4()
	return a.Is4() && b[0] == 10 && b[1] == 0 && b[2] == 0 && b[3] >= 2 && b[3] <= 10
}

// startSwarm has the origin seed and the real nodes leech ihA.
func startSwarm(t *testing.T, tr *Tracker) {
	t.Helper()
	announceFrom(t, tr, "10.0.0.1", q("peer_id", peerID("origin"), "left", "0"))
	for i, n := range realNodes() {
		announceFrom(t, tr, strings.TrimSuffix(n, ":6881"), q("peer_id", peerID(fmt.Sprint(i))))
	}
}

// checkNewcomer announces a new booted node and checks that it gets the
// origin and every real node.
func checkNewcomer(t *testing.T, tr *Tracker, numwant string) {
	t.Helper()
	r := announceFrom(t, tr, "10.0.0.10", q("peer_id", peerID("new"), "numwant", numwant))
	for _, p := range append([]string{origin.String()}, realNodes()...) {
		if !contains(r.peers, p) {
			t.Errorf("newcomer's peers %v lack %s", r.peers, p)
		}
	}
}

// One address announcing 10,000 ports (as seeders, so that the origin rule
// would withhold the appliance) neither pushes the real peers or the
// origin out of the store nor out of a new node's answer.
func TestOneAddressCannotTakeOver(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, func(o *Options) { o.Booted = bootedReal })
	startSwarm(t, tr)
	for port := 1; port <= 10000; port++ {
		announceFrom(t, tr, "10.0.0.66", q("peer_id", peerID(fmt.Sprint("x", port)), "port", fmt.Sprint(port), "left", "0"))
	}
	held := 0
	for _, p := range tr.Peers(ihA) {
		if p.Addr.Addr() == netip.MustParseAddr("10.0.0.66") {
			held++
		}
	}
	if held != DefaultMaxPeersPerAddr {
		t.Errorf("the flooding address holds %d peers, want %d", held, DefaultMaxPeersPerAddr)
	}
	checkNewcomer(t, tr, "50")
	// Its last ports are the ones kept: a restarted client's new port
	// replaces its old one.
	if r := announceFrom(t, tr, "10.0.0.10", q("peer_id", peerID("new"))); !contains(r.peers, "10.0.0.66:10000") {
		t.Errorf("peers %v lack the flooding address's newest port", r.peers)
	}
}

// Many addresses filling a full torrent push out the peers that did not
// boot, never the origin or the booted ones, and a new node gets the
// booted peers first.
func TestFullTorrentKeepsBootedPeers(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, func(o *Options) { o.Booted = bootedReal; o.MaxPeersPerTorrent = 40 })
	startSwarm(t, tr)
	for i := range 500 {
		for port := 1; port <= 5; port++ {
			announceFrom(t, tr, fmt.Sprintf("10.9.%d.%d", i/200, i%200), q("peer_id", peerID(fmt.Sprint(i, "-", port)), "port", fmt.Sprint(port)))
		}
	}
	if n := len(tr.Peers(ihA)); n != 40 {
		t.Errorf("%d peers stored, cap 40", n)
	}
	// 9 peers asked for: the origin and the 8 booted nodes, none of the
	// 31 others.
	checkNewcomer(t, tr, "9")
}

// The store is bounded over all torrents; origins still get in.
func TestTotalBound(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, func(o *Options) { o.MaxPeersTotal = 30 })
	for i := range 25 {
		announceFrom(t, tr, fmt.Sprintf("10.1.0.%d", i), q())
		announceFrom(t, tr, fmt.Sprintf("10.2.0.%d", i), q("info_hash", string(ihB[:])))
	}
	a, b := len(tr.Peers(ihA)), len(tr.Peers(ihB))
	if a+b != 30 || b == 0 {
		t.Errorf("%d + %d peers stored, want 30 with both torrents", a, b)
	}
	announceFrom(t, tr, "10.0.0.1", q("peer_id", peerID("origin"), "left", "0", "info_hash", string(ihB[:])))
	if r := announceFrom(t, tr, "10.3.0.1", q("info_hash", string(ihB[:]))); !contains(r.peers, origin.String()) {
		t.Errorf("peers %v lack the origin", r.peers)
	}
}
