package tracker

import (
	"container/list"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// peer is one announcing client of one torrent.
type peer struct {
	addr       netip.AddrPort
	id         [20]byte
	left       int64
	uploaded   int64
	downloaded int64
	lastSeen   time.Time
	seeder     bool
	origin     bool
	booted     bool // Options.Booted vouched for its address at its last announce

	idx   int           // position in torrent.all
	order *list.Element // place in torrent.order
}

// torrent is the swarm of one infohash. all gives random sampling in O(1)
// per peer; order, the peers in announce order (oldest first), gives
// expiry and drop-oldest without scanning.
type torrent struct {
	byAddr  map[netip.AddrPort]*peer
	origins map[netip.AddrPort]*peer
	// byIP holds the peers of each address that MaxPeersPerAddr limits
	// (all but origins and loopback), at most that many each.
	byIP   map[netip.Addr][]*peer
	all    []*peer
	order  list.List // of *peer
	n      Swarm
	booted int  // peers with booted set
	total  *int // the tracker's count of peers over all torrents
}

func newTorrent(total *int) *torrent {
	return &torrent{
		byAddr:  make(map[netip.AddrPort]*peer),
		origins: make(map[netip.AddrPort]*peer),
		byIP:    make(map[netip.Addr][]*peer),
		total:   total,
	}
}

// limited reports whether p counts towards its address's MaxPeersPerAddr:
// the appliance's own seeders and local processes do not.
func limited(p *peer) bool { return !p.origin && !p.addr.Addr().IsLoopback() }

// count adds d to the counter p belongs to.
func (tor *torrent) count(p *peer, d int) {
	switch {
	case p.origin && p.seeder:
		tor.n.OriginSeeders += d
	case p.origin:
		tor.n.OriginLeechers += d
	case p.seeder:
		tor.n.Seeders += d
	default:
		tor.n.Leechers += d
	}
	if p.booted {
		tor.booted += d
		if p.seeder && !p.origin {
			tor.n.BootedSeeders += d
		}
	}
}

// oldest returns the peer that announced longest ago, or nil.
func (tor *torrent) oldest() *peer {
	if e := tor.order.Front(); e != nil {
		return e.Value.(*peer)
	}
	return nil
}

// victim is the peer to drop to make room: the longest silent of those
// that did not boot, else the longest silent of the rest; never an origin.
// nil if only origins are left.
func (tor *torrent) victim() *peer {
	var fallback *peer
	for e := tor.order.Front(); e != nil; e = e.Next() {
		p := e.Value.(*peer)
		switch {
		case p.origin:
		case !p.booted:
			return p
		case fallback == nil:
			fallback = p
			if tor.booted == len(tor.all)-len(tor.origins) {
				return p // every other peer booted too
			}
		}
	}
	return fallback
}

// insert stores p, first making room for it within its address's, the
// torrent's and the tracker's bounds. It reports false, storing nothing,
// if only origins could make room.
func (tor *torrent) insert(p *peer, l limits) bool {
	if limited(p) {
		if same := tor.byIP[p.addr.Addr()]; len(same) >= l.perAddr {
			// The address replaces its own longest silent peer.
			old := same[0]
			for _, q := range same[1:] {
				if q.lastSeen.Before(old.lastSeen) {
					old = q
				}
			}
			tor.remove(old)
		}
	}
	for !p.origin && (len(tor.all) >= l.perTorrent || *tor.total >= l.total) {
		v := tor.victim()
		if v == nil {
			return false
		}
		tor.remove(v)
	}
	p.idx = len(tor.all)
	tor.all = append(tor.all, p)
	tor.byAddr[p.addr] = p
	if p.origin {
		tor.origins[p.addr] = p
	}
	if limited(p) {
		tor.byIP[p.addr.Addr()] = append(tor.byIP[p.addr.Addr()], p)
	}
	p.order = tor.order.PushBack(p)
	tor.count(p, +1)
	*tor.total++
	return true
}

func (tor *torrent) remove(p *peer) {
	tor.count(p, -1)
	*tor.total--
	tor.order.Remove(p.order)
	delete(tor.byAddr, p.addr)
	delete(tor.origins, p.addr)
	if same := tor.byIP[p.addr.Addr()]; len(same) > 0 {
		if i := slices.Index(same, p); i >= 0 {
			if same = slices.Delete(same, i, i+1); len(same) == 0 {
				delete(tor.byIP, p.addr.Addr())
			} else {
				tor.byIP[p.addr.Addr()] = same
			}
		}
	}
	last := len(tor.all) - 1
	tor.swap(p.idx, last)
	tor.all[last] = nil
	tor.all = tor.all[:last]
}

func (tor *torrent) swap(i, j int) {
	tor.all[i], tor.all[j] = tor.all[j], tor.all[i]
	tor.all[i].idx = i
	tor.all[j].idx = j
}

// expire drops the peers last seen before cutoff and returns how many.
func (tor *torrent) expire(cutoff time.Time) int {
	n := 0
	for p := tor.oldest(); p != nil && p.lastSeen.Before(cutoff); p = tor.oldest() {
		tor.remove(p)
		n++
	}
	return n
}

// update records an announce from an already stored peer. Whether it is
// an origin is fixed when it is stored (Options.Origins is a function of
// its address).
func (tor *torrent) update(p *peer, a *announce, booted bool, now time.Time) {
	tor.count(p, -1)
	p.id, p.left, p.uploaded, p.downloaded = a.peerID, a.left, a.uploaded, a.downloaded
	p.seeder = a.left == 0 || a.event == eventCompleted
	p.lastSeen = now
	p.booted = booted
	tor.count(p, +1)
	tor.order.MoveToBack(p.order)
}

// announceResult is what an announce returns, copied out of the store.
type announceResult struct {
	complete, incomplete int
	peers                []peerAddr
}

type peerAddr struct {
	addr netip.AddrPort
	id   [20]byte
}

// announce records a (parsed, allowed, known) announce from addr and picks
// the peers to return.
func (t *Tracker) announce(a *announce, addr netip.AddrPort, origin, booted bool) announceResult {
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	tor := t.torrents[a.infoHash]
	if tor == nil {
		if a.event == eventStopped {
			return announceResult{}
		}
		tor = newTorrent(&t.total)
		t.torrents[a.infoHash] = tor
	}
	tor.expire(now.Add(-t.ttl))
	p := tor.byAddr[addr]
	want := min(a.numWant, t.o.MaxPeers)
	if a.numWant < 0 {
		want = t.o.MaxPeers
	}
	switch {
	case a.event == eventStopped:
		if p != nil {
			tor.remove(p)
		}
		p, want = nil, 0
	case p == nil:
		p = &peer{addr: addr, origin: origin, booted: booted}
		// Counted by insert with the fields update sets.
		p.id, p.left, p.uploaded, p.downloaded = a.peerID, a.left, a.uploaded, a.downloaded
		p.seeder = a.left == 0 || a.event == eventCompleted
		p.lastSeen = now
		if !tor.insert(p, t.limits()) {
			p = nil
		}
	default:
		tor.update(p, a, booted, now)
	}
	res := announceResult{
		complete:   tor.n.Seeders + tor.n.OriginSeeders,
		incomplete: tor.n.Leechers + tor.n.OriginLeechers,
	}
	if want > 0 {
		res.peers = t.pick(tor, a, addr, want)
	}
	if len(tor.all) == 0 {
		delete(t.torrents, a.infoHash)
	}
	return res
}

// pick chooses up to want peers for the requester at addr: see "Peer
// selection and the origin rule" in the package comment.
func (t *Tracker) pick(tor *torrent, a *announce, addr netip.AddrPort, want int) []peerAddr {
	seederReq := a.left == 0 || a.event == eventCompleted
	self := func(p *peer) bool {
		return p.addr == addr || (p.addr.Addr() == addr.Addr() && p.id == a.peerID)
	}
	usable := func(p *peer) bool { return !self(p) && !(seederReq && p.seeder) }

	// With Options.Booted set, only seeders that booted count: announces
	// alone cannot make the tracker withhold the appliance's seeders.
	otherSeeders := tor.n.Seeders
	if t.o.Booted != nil {
		otherSeeders = tor.n.BootedSeeders
	}
	if me := tor.byAddr[addr]; me != nil && me.seeder && !me.origin && (t.o.Booted == nil || me.booted) {
		otherSeeders--
	}
	var out []peerAddr
	addOrigins := func() {
		for _, p := range tor.origins {
			if len(out) < want && usable(p) {
				out = append(out, peerAddr{p.addr, p.id})
			}
		}
	}
	withOrigins := otherSeeders < t.o.OriginThreshold
	if withOrigins {
		addOrigins()
	}
	// Partial Fisher-Yates over tor.all: uniform sample without
	// replacement, peers that booted first: the others fill what is left.
	var others []peerAddr
	bootedSeen := 0
	for i := 0; i < len(tor.all) && len(out) < want; i++ {
		if bootedSeen == tor.booted && len(out)+len(others) >= want {
			break
		}
		tor.swap(i, i+rand.IntN(len(tor.all)-i))
		p := tor.all[i]
		if p.booted {
			bootedSeen++
		}
		switch {
		case p.origin || !usable(p):
		case p.booted || t.o.Booted == nil:
			out = append(out, peerAddr{p.addr, p.id})
		case len(others) < want:
			others = append(others, peerAddr{p.addr, p.id})
		}
	}
	out = append(out, others[:min(len(others), want-len(out))]...)
	if len(out) == 0 && !withOrigins {
		addOrigins()
	}
	return out
}
