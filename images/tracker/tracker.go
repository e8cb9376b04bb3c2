// Package tracker is the appliance's private BitTorrent HTTP tracker. Racks
// of servers fetch the appliance's OS images over BitTorrent; the appliance
// serves GET /announce on its HTTP port (mount the *Tracker there) so that
// the booting nodes find each other and spread the load across the swarm
// rather than onto the appliance.
//
// It is private: only the catalog's infohashes are tracked (Options.Known)
// and only peers inside the configured networks may announce
// (Options.Allowed); anything else gets a bencoded "failure reason". The
// peer's address is the HTTP request's remote address: the spoofable "ip"
// parameter is ignored.
//
// Announces follow BEP 3 with compact peer lists (BEP 23, IPv6 in "peers6"
// as in BEP 7) unless compact=0 asks for the dictionary form. Peers are kept
// per infohash, keyed by (IP, port); "stopped" removes a peer, "completed"
// or left=0 makes it a seeder, and a peer that has not announced for
// 2×Interval+MinInterval expires.
//
// # Bounds
//
// One address holds at most MaxPeersPerAddr peers of a torrent (default
// 4): a host announcing more ports replaces its own longest silent peer,
// and cannot push out anyone else's. Each torrent keeps at most
// MaxPeersPerTorrent peers and the tracker MaxPeersTotal over all
// torrents; when full, the peer silent longest among those at addresses
// that did not boot (Options.Booted) is dropped first, then the one silent
// longest. The appliance's own seeders (origins) and loopback peers are
// never limited per address, and origins are never dropped to make room.
//
// # Peer selection and the origin rule
//
// A requester never gets itself back (same address and port, or same IP and
// peer_id), and a seeder gets only leechers. Otherwise the list is a random
// sample of the swarm, at most numwant (capped at MaxPeers) long; with
// Options.Booted set, peers at addresses that booted come first and the
// others only fill what is left.
//
// The appliance's own seeders are "origin" peers (Options.Origins). While
// the torrent has fewer than OriginThreshold non-origin seeders other than
// the requester (with Options.Booted set: seeders at addresses that
// booted, so that announces alone cannot make the tracker withhold the
// origins), every leecher gets the origin peers first in its list, so
// early in a rack boot every node can reach the appliance. Once that many
// nodes hold the whole image, origins are withheld and new nodes are pointed
// at those nodes instead; when they stop or expire, the origins are handed
// out again. As a last resort a leecher that would otherwise get no peers at
// all gets the origins.
//
// New starts no goroutines: lazily, every announce and every query drops the
// expired peers of the torrent it touches, and Run (or Sweep, called
// periodically) drops them everywhere.
package tracker

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultInterval           = 30 * time.Second
	DefaultMinInterval        = 5 * time.Second
	DefaultMaxPeers           = 50
	DefaultOriginThreshold    = 3
	DefaultMaxPeersPerTorrent = 10000
	DefaultMaxPeersTotal      = 50000
	// DefaultMaxPeersPerAddr is how many peers one address may hold in a
	// torrent: a node runs one BitTorrent client, and a restarted client
	// announcing a new port replaces its old entry.
	DefaultMaxPeersPerAddr = 4
)

// Options configure a Tracker. The callbacks are called without the
// tracker's lock held, and must be safe for concurrent use.
type Options struct {
	// Known reports whether ih is one of the catalog's images. Announces for
	// anything else fail. A nil Known tracks nothing.
	Known func(ih [20]byte) bool
	// Allowed reports whether a peer at addr may announce. nil allows all.
	Allowed func(addr netip.Addr) bool
	// Interval and MinInterval are returned to clients (default 30s and 5s).
	Interval    time.Duration
	MinInterval time.Duration
	// MaxPeers caps numwant, and is the list length when a client asks for
	// no particular number (default 50).
	MaxPeers int
	// Origins reports whether the peer at addr (the announcing IP and its
	// announced port) is one of the appliance's own seeders. nil: none is.
	Origins func(addr netip.AddrPort) bool
	// OriginThreshold is the number of non-origin seeders from which origin
	// peers are withheld from leechers (default 3). See the package comment.
	OriginThreshold int
	// MaxPeersPerTorrent bounds memory per torrent (default 10,000).
	MaxPeersPerTorrent int
	// MaxPeersTotal bounds the peers of all torrents (default 50,000).
	MaxPeersTotal int
	// MaxPeersPerAddr bounds the peers of one torrent at one IP address,
	// origins and loopback apart (default DefaultMaxPeersPerAddr).
	MaxPeersPerAddr int
	// Booted reports whether the host at addr booted from the appliance (it
	// fetched a signed boot config): such peers are handed out first, are
	// dropped last, and only their seeders make the tracker withhold the
	// origins. nil: no peer is told apart.
	Booted func(addr netip.Addr) bool
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
	// Log receives announce and rejection records (default: discarded).
	Log *slog.Logger
}

// Tracker is an http.Handler for announces plus the peer store behind it.
// Its methods are safe for concurrent use.
type Tracker struct {
	o   Options
	ttl time.Duration
	log *slog.Logger

	mu       sync.Mutex
	torrents map[[20]byte]*torrent
	total    int // peers over all torrents
}

// limits are the bounds a torrent's insert keeps.
type limits struct{ perAddr, perTorrent, total int }

func (t *Tracker) limits() limits {
	return limits{t.o.MaxPeersPerAddr, t.o.MaxPeersPerTorrent, t.o.MaxPeersTotal}
}

// New returns a Tracker with o's zero fields set to their defaults.
func New(o Options) *Tracker {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MinInterval <= 0 {
		o.MinInterval = DefaultMinInterval
	}
	if o.MinInterval > o.Interval {
		o.MinInterval = o.Interval
	}
	if o.MaxPeers <= 0 {
		o.MaxPeers = DefaultMaxPeers
	}
	if o.OriginThreshold <= 0 {
		o.OriginThreshold = DefaultOriginThreshold
	}
	if o.MaxPeersPerTorrent <= 0 {
		o.MaxPeersPerTorrent = DefaultMaxPeersPerTorrent
	}
	if o.MaxPeersTotal <= 0 {
		o.MaxPeersTotal = DefaultMaxPeersTotal
	}
	if o.MaxPeersPerAddr <= 0 {
		o.MaxPeersPerAddr = DefaultMaxPeersPerAddr
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{
		o:        o,
		ttl:      2*o.Interval + o.MinInterval,
		log:      log,
		torrents: make(map[[20]byte]*torrent),
	}
}

// Swarm counts a torrent's live peers, the appliance's origin peers apart.
type Swarm struct {
	Seeders        int // non-origin peers with the whole image
	Leechers       int // non-origin peers still downloading
	OriginSeeders  int
	OriginLeechers int
	// BootedSeeders counts those of Seeders at addresses that booted
	// (Options.Booted; 0 without it).
	BootedSeeders int
}

// PeerInfo describes one live peer, for a dashboard.
type PeerInfo struct {
	Addr       netip.AddrPort
	PeerID     string // hex
	Left       int64
	Uploaded   int64
	Downloaded int64
	LastSeen   time.Time
	Seeder     bool
	Origin     bool
	Booted     bool
}

// Swarm returns the counts of ih's live peers (zero for an unknown torrent).
func (t *Tracker) Swarm(ih [20]byte) Swarm {
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	tor := t.live(ih, now)
	if tor == nil {
		return Swarm{}
	}
	return tor.n
}

// Listed reports whether a live peer of ih announced with peer ID id: one
// that announced it stopped, or was silent past the interval, is not.
func (t *Tracker) Listed(ih, id [20]byte) bool {
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	tor := t.live(ih, now)
	if tor == nil {
		return false
	}
	for _, p := range tor.all {
		if p.id == id {
			return true
		}
	}
	return false
}

// Peers returns ih's live peers ordered by address.
func (t *Tracker) Peers(ih [20]byte) []PeerInfo {
	now := t.o.Now()
	t.mu.Lock()
	tor := t.live(ih, now)
	if tor == nil {
		t.mu.Unlock()
		return nil
	}
	out := make([]PeerInfo, 0, len(tor.all))
	for _, p := range tor.all {
		out = append(out, PeerInfo{
			Addr:       p.addr,
			PeerID:     hex.EncodeToString(p.id[:]),
			Left:       p.left,
			Uploaded:   p.uploaded,
			Downloaded: p.downloaded,
			LastSeen:   p.lastSeen,
			Seeder:     p.seeder,
			Origin:     p.origin,
			Booted:     p.booted,
		})
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Compare(out[j].Addr) < 0 })
	return out
}

// Sweep drops every expired peer, and every torrent left empty, and returns
// the number of peers dropped.
func (t *Tracker) Sweep() int {
	cutoff := t.o.Now().Add(-t.ttl)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for ih, tor := range t.torrents {
		n += tor.expire(cutoff)
		if len(tor.all) == 0 {
			delete(t.torrents, ih)
		}
	}
	return n
}

// Run sweeps every Interval until ctx ends, then returns nil.
func (t *Tracker) Run(ctx context.Context) error {
	tick := time.NewTicker(t.o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if n := t.Sweep(); n > 0 {
				t.log.Debug("tracker expired silent peers", "peers", n)
			}
		}
	}
}

// live returns ih's torrent with its expired peers dropped, or nil if it
// has no peers. t.mu must be held.
func (t *Tracker) live(ih [20]byte, now time.Time) *torrent {
	tor := t.torrents[ih]
	if tor == nil {
		return nil
	}
	tor.expire(now.Add(-t.ttl))
	if len(tor.all) == 0 {
		delete(t.torrents, ih)
		return nil
	}
	return tor
}
