package tracker

import (
	"container/list"
	"math/rand/v2"
	"net/netip"
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

	idx   int           // position in torrent.all
	order *list.Element // place in torrent.order
}

// torrent is the swarm of one infohash. all gives random sampling in O(1)
// per peer; order, the peers in announce order (oldest first), gives
// expiry and drop-oldest without scanning.
type torrent struct {
	byAddr  map[netip.AddrPort]*peer
	origins map[netip.AddrPort]*peer
	all     []*peer
	order   list.List // of *peer
	n       Swarm
}

func newTorrent() *torrent {
	return &torrent{byAddr: make(map[netip.AddrPort]*peer), origins: make(map[netip.AddrPort]*peer)}
}

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
}

// oldest returns the peer that announced longest ago, or nil.
func (tor *torrent) oldest() *peer {
	if e := tor.order.Front(); e != nil {
		return e.Value.(*peer)
	}
	return nil
}

func (tor *torrent) insert(p *peer, max int) {
	for len(tor.all) >= max && tor.order.Len() > 0 {
		tor.remove(tor.oldest())
	}
	p.idx = len(tor.all)
	tor.all = append(tor.all, p)
	tor.byAddr[p.addr] = p
	if p.origin {
		tor.origins[p.addr] = p
	}
	p.order = tor.order.PushBack(p)
	tor.count(p, +1)
}

func (tor *torrent) remove(p *peer) {
	tor.count(p, -1)
	tor.order.Remove(p.order)
	delete(tor.byAddr, p.addr)
	delete(tor.origins, p.addr)
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

// update records an announce from an already stored peer.
func (tor *torrent) update(p *peer, a *announce, origin bool, now time.Time) {
	tor.count(p, -1)
	p.id, p.left, p.uploaded, p.downloaded = a.peerID, a.left, a.uploaded, a.downloaded
	p.seeder = a.left == 0 || a.event == eventCompleted
	p.lastSeen = now
	if p.origin != origin {
		p.origin = origin
		if origin {
			tor.origins[p.addr] = p
		} else {
			delete(tor.origins, p.addr)
		}
	}
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
func (t *Tracker) announce(a *announce, addr netip.AddrPort, origin bool) announceResult {
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	tor := t.torrents[a.infoHash]
	if tor == nil {
		if a.event == eventStopped {
			return announceResult{}
		}
		tor = newTorrent()
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
		p = &peer{addr: addr, origin: origin}
		// Counted by insert with the fields update sets.
		p.id, p.left, p.uploaded, p.downloaded = a.peerID, a.left, a.uploaded, a.downloaded
		p.seeder = a.left == 0 || a.event == eventCompleted
		p.lastSeen = now
		tor.insert(p, t.o.MaxPeersPerTorrent)
	default:
		tor.update(p, a, origin, now)
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

	otherSeeders := tor.n.Seeders
	if me := tor.byAddr[addr]; me != nil && me.seeder && !me.origin {
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
	// Partial Fisher-Yates over tor.all: uniform sample without replacement.
	for i := 0; i < len(tor.all) && len(out) < want; i++ {
		tor.swap(i, i+rand.IntN(len(tor.all)-i))
		p := tor.all[i]
		if !p.origin && usable(p) {
			out = append(out, peerAddr{p.addr, p.id})
		}
	}
	if len(out) == 0 && !withOrigins {
		addOrigins()
	}
	return out
}
