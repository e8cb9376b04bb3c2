package seeder

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/anacrolix/torrent"
	"golang.org/x/time/rate"
)

const (
	// restEvery is how often the seeder counts who holds each piece.
	restEvery = 500 * time.Millisecond
	// starveAfter is how long a connected peer that lacks pieces may go
	// without announcing a new one before the seeder uploads again for
	// it: well before a node turns to the web seed (10 s).
	starveAfter = 3 * time.Second
	// rateLooks is how many looks the seeder averages what it sent each
	// peer over: the library writes a peer's requested blocks into the
	// socket's buffer at once, which then drains for seconds on a link the
	// rack shares.
	rateLooks = 10
	// restBudget is the copies of a version the seeder sends freely within
	// restWindow before it rests: a rack that takes about one copy from
	// the appliance (up to about 8 nodes) is served at the appliance's
	// full rate to the end, with no node waiting on the one peer that
	// holds its last pieces; a larger rack rests once it had that much.
	restBudget = 1.25
	// restWindow is how far back the budget counts, and how long a
	// version that rested may rest again at once.
	restWindow = 5 * time.Minute
)

// peerWatch is what the seeder saw of one connected peer.
type peerWatch struct {
	have   int       // pieces it announced
	since  time.Time // when it last announced one, or connected
	hist   []int64   // bytes of pieces the seeder had sent it, at each of the last rateLooks looks
	pieces []uint64  // bit i: it announced piece i
}

// restView is one look at a torrent's swarm from the seeder.
type restView struct {
	holders  []int                       // per piece: the peers known to hold it
	starving int                         // connected peers lacking pieces that announced none for starveAfter
	spent    bool                        // the seeder sent restBudget copies within restWindow, or rested within it
	peers    []*torrent.PeerConn         // connected
	lacking  []*torrent.PeerConn         // connected, lacking pieces
	sent     map[*torrent.PeerConn]int64 // bytes of pieces sent to each peer per look, over the last rateLooks, for those it saw before
}

// shouldRest reports whether the seeder may pause its upload: it has spent
// its budget, every piece is held by at least copies peers, and no
// connected peer is starving (its peers do not hold what it lacks, or
// cannot send it).
func shouldRest(v restView, copies int) bool {
	if copies <= 0 || len(v.holders) == 0 || v.starving > 0 || !v.spent {
		return false
	}
	for _, n := range v.holders {
		if n < copies {
			return false
		}
	}
	return true
}

// goneFor is how long the seeder counts the pieces a peer announced after
// its connection to it closed. The seeder keeps a few connections per image
// (swarm.SeedPeerConns); in a larger rack most peers holding a piece are
// not connected to it, and a connection that closes (the network, the node
// or the library ended it) takes what the seeder knew of that peer with it:
// counting only the connected ones, the seeder would suggest, and send,
// pieces again that a node it just lost holds. A peer that restarted lost
// what it held, and comes back under a new peer ID: for goneFor the seeder
// may think a piece held that is not, and suggests it no more; the nodes
// still ask for it once nothing else is scarce. A peer that told the
// tracker it stopped (or that the tracker expired) is forgotten at once.
const goneFor = time.Minute

// watcher is what the seeder remembers of a torrent's peers from one look
// to the next.
type watcher struct {
	conns map[*torrent.PeerConn]peerWatch // connected
	gone  map[[20]byte]gonePeer           // by peer ID: peers whose connection closed within goneFor
}

// gonePeer is what a peer had announced when its connection closed.
type gonePeer struct {
	pieces []uint64 // bit i: piece i
	at     time.Time
}

// look counts, for each piece of t, the peers known to hold it: the
// seeders the tracker knows of (every piece), each connected peer that
// announced the piece, and each peer that had announced it on a connection
// that closed within goneFor while listed reports it still in the swarm
// (nil: always). The library drops a connection to a peer
// that completed (neither side wants anything of the other), so complete
// peers are known from their announces, then from the tracker. With
// booted set, a connected peer's pieces count only if booted vouches for
// its address: a host that connects and claims every piece is still
// served (and may starve) but holds nothing for the rest. w carries each
// peer's progress from one look to the next.
func look(t *torrent.Torrent, seeders int, booted func(netip.Addr) bool, listed func(id [20]byte) bool, w *watcher, now time.Time) restView {
	n := t.NumPieces()
	v := restView{holders: make([]int, n), sent: map[*torrent.PeerConn]int64{}}
	for i := range v.holders {
		v.holders[i] = seeders
	}
	if w.conns == nil {
		w.conns = map[*torrent.PeerConn]peerWatch{}
		w.gone = map[[20]byte]gonePeer{}
	}
	seen := map[*torrent.PeerConn]bool{}
	ids := map[[20]byte]bool{}
	for _, pc := range t.PeerConns() {
		have := 0
		pieces := make([]uint64, (n+63)/64)
		holds := booted == nil || peerBooted(pc, booted)
		pc.PeerPieces().Iterate(func(i uint32) bool {
			if int(i) >= n {
				return false
			}
			if holds {
				v.holders[i]++
				pieces[i/64] |= 1 << (i % 64)
			}
			have++
			return true
		})
		seen[pc] = true
		ids[pc.PeerID] = true
		v.peers = append(v.peers, pc)
		if have < n {
			v.lacking = append(v.lacking, pc)
		}
		st := pc.Stats()
		written := st.BytesWrittenData.Int64()
		pw, ok := w.conns[pc]
		if !ok || have != pw.have {
			pw.have, pw.since = have, now
		}
		pw.hist = append(pw.hist, written)
		if len(pw.hist) > rateLooks {
			pw.hist = slices.Delete(pw.hist, 0, len(pw.hist)-rateLooks)
		}
		if n := len(pw.hist); n > 1 {
			v.sent[pc] = (pw.hist[n-1] - pw.hist[0]) / int64(n-1)
		}
		pw.pieces = pieces
		w.conns[pc] = pw
		if have < n && now.Sub(pw.since) >= starveAfter {
			v.starving++
		}
	}
	for pc, pw := range w.conns {
		if !seen[pc] {
			if !ids[pc.PeerID] {
				w.gone[pc.PeerID] = gonePeer{pieces: pw.pieces, at: now}
			}
			delete(w.conns, pc)
		}
	}
	for id, g := range w.gone {
		if ids[id] || now.Sub(g.at) >= goneFor || (listed != nil && !listed(id)) {
			delete(w.gone, id)
			continue
		}
		for i := range v.holders {
			if g.pieces[i/64]&(1<<(i%64)) != 0 {
				v.holders[i]++
			}
		}
	}
	return v
}

// rest pauses the upload of every complete version whose pieces are all
// held by at least RestCopies peers, and resumes it as soon as one piece
// is not (a peer holding it left, or a new version is being fetched), or
// a connected peer has had no new piece for starveAfter. Nodes then take
// from each other what they would otherwise all take from the appliance,
// and the appliance's link carries little more than one copy of each
// version, however many nodes boot. Only after restBudget copies went out
// within restWindow, though: a small rack is served at full speed to the
// end. rest also applies UploadBytesPerSec to lim, the client's upload
// limiter.
func (s *Seeder) rest(ctx context.Context, lim *rate.Limiter) {
	tick := time.NewTicker(restEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.limitUpload(lim)
		copies := 0
		if s.RestCopies != nil {
			copies = s.RestCopies()
		}
		s.mu.Lock()
		es := make([]*entry, 0, len(s.seeding))
		for _, e := range s.seeding {
			es = append(es, e)
		}
		s.mu.Unlock()
		for _, e := range es {
			if !e.t.Complete().Bool() || (copies <= 0 && !e.resting && len(e.told) == 0) {
				continue
			}
			seeders := 0
			if s.Seeders != nil {
				seeders = s.Seeders(e.t.InfoHash())
			}
			now := time.Now()
			var listed func([20]byte) bool
			if s.Listed != nil {
				ih := e.t.InfoHash()
				listed = func(id [20]byte) bool { return s.Listed(ih, id) }
			}
			v := look(e.t, seeders, s.Booted, listed, &e.watch, now)
			v.spent = e.spend(now, uploaded(e.t), e.t.Length())
			rest := shouldRest(v, copies)
			s.suggest(e, v, copies, now)
			if v.starving > 0 {
				// One look of upload for a starving peer, then it waits
				// starveAfter again: a peer too slow to take anything
				// must not keep the seeder sending to the whole rack.
				for pc, w := range e.watch.conns {
					if now.Sub(w.since) >= starveAfter {
						w.since = now
						e.watch.conns[pc] = w
					}
				}
			}
			if rest == e.resting {
				continue
			}
			s.mu.Lock()
			e.resting = rest
			s.mu.Unlock()
			if rest {
				e.t.DisallowDataUpload()
				s.Log.Debug("seeder: every piece is held by peers; pausing upload", "image", e.name, "version", e.version, "copies", copies, "seeders", seeders)
			} else {
				e.t.AllowDataUpload()
				s.Log.Debug("seeder: uploading again", "image", e.name, "version", e.version, "starving", v.starving, "seeders", seeders)
			}
		}
	}
}

// peerBooted reports whether booted vouches for pc's remote address.
func peerBooted(pc *torrent.PeerConn, booted func(netip.Addr) bool) bool {
	ap, err := netip.ParseAddrPort(pc.RemoteAddr.String())
	return err == nil && booted(ap.Addr().Unmap())
}

// limitUpload sets lim to UploadBytesPerSec, if that changed.
func (s *Seeder) limitUpload(lim *rate.Limiter) {
	limit, burst := rate.Inf, 0
	if s.UploadBytesPerSec != nil {
		if bps := s.UploadBytesPerSec(); bps > 0 {
			// A burst of at least one request (16 KiB): the library
			// panics below that.
			limit, burst = rate.Limit(bps), int(max(256<<10, bps/4))
		}
	}
	switch {
	case limit == rate.Inf:
		// The burst does not matter; the library sets its own.
		if lim.Limit() != rate.Inf {
			lim.SetLimit(rate.Inf)
		}
	case lim.Limit() != limit || lim.Burst() != burst:
		lim.SetBurst(burst)
		lim.SetLimit(limit)
	}
}

// sample is the bytes a version had uploaded at a time.
type sample struct {
	at    time.Time
	bytes int64
}

// spend records the version's upload total at now, and reports whether it
// has spent its budget: sent restBudget copies of size bytes within
// restWindow, or rested within restWindow.
func (e *entry) spend(now time.Time, total, size int64) bool {
	e.sent = append(e.sent, sample{now, total})
	i := 0
	for i < len(e.sent)-1 && now.Sub(e.sent[i+1].at) >= restWindow {
		i++
	}
	e.sent = e.sent[i:]
	if e.resting {
		e.restedAt = now
	}
	recent := !e.restedAt.IsZero() && now.Sub(e.restedAt) < restWindow
	return recent || float64(total-e.sent[0].bytes) >= restBudget*float64(size)
}

// Resting returns, by image, how many of its versions have their upload
// paused.
func (s *Seeder) Resting() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, e := range s.seeding {
		n := out[e.name] // 0 too: an image none of whose versions rest
		if e.resting {
			n++
		}
		out[e.name] = n
	}
	return out
}
