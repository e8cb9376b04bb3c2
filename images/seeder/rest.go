package seeder

import (
	"context"
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
	have  int       // pieces it announced
	since time.Time // when it last announced one, or connected
}

// restView is one look at a torrent's swarm from the seeder.
type restView struct {
	holders  []int               // per piece: the peers known to hold it
	starving int                 // connected peers lacking pieces that announced none for starveAfter
	spent    bool                // the seeder sent restBudget copies within restWindow, or rested within it
	peers    []*torrent.PeerConn // connected
	lacking  []*torrent.PeerConn // connected, lacking pieces
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

// look counts, for each piece of t, the peers known to hold it: the
// seeders the tracker knows of (every piece) plus each connected peer that
// announced the piece. The library drops a connection to a peer that
// completed (neither side wants anything of the other), so complete peers
// are only known from their announces. watch carries each connected peer's
// progress from one look to the next.
func look(t *torrent.Torrent, seeders int, watch map[*torrent.PeerConn]peerWatch, now time.Time) restView {
	n := t.NumPieces()
	v := restView{holders: make([]int, n)}
	for i := range v.holders {
		v.holders[i] = seeders
	}
	seen := map[*torrent.PeerConn]bool{}
	for _, pc := range t.PeerConns() {
		have := 0
		pc.PeerPieces().Iterate(func(i uint32) bool {
			if int(i) >= n {
				return false
			}
			v.holders[i]++
			have++
			return true
		})
		seen[pc] = true
		v.peers = append(v.peers, pc)
		if have < n {
			v.lacking = append(v.lacking, pc)
		}
		w, ok := watch[pc]
		if !ok || have != w.have {
			w = peerWatch{have: have, since: now}
			watch[pc] = w
		}
		if have < n && now.Sub(w.since) >= starveAfter {
			v.starving++
		}
	}
	for pc := range watch {
		if !seen[pc] {
			delete(watch, pc)
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
			if !e.t.Complete().Bool() || (copies <= 0 && !e.resting) {
				continue
			}
			seeders := 0
			if s.Seeders != nil {
				seeders = s.Seeders(e.t.InfoHash())
			}
			if e.watch == nil {
				e.watch = map[*torrent.PeerConn]peerWatch{}
			}
			now := time.Now()
			v := look(e.t, seeders, e.watch, now)
			v.spent = e.spend(now, uploaded(e.t), e.t.Length())
			rest := shouldRest(v, copies)
			if copies > 0 {
				s.suggest(e, v, copies, now)
			}
			if v.starving > 0 {
				// One look of upload for a starving peer, then it waits
				// starveAfter again: a peer too slow to take anything
				// must not keep the seeder sending to the whole rack.
				for pc, w := range e.watch {
					if now.Sub(w.since) >= starveAfter {
						e.watch[pc] = peerWatch{have: w.have, since: now}
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
