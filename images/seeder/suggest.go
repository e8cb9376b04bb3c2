package seeder

import (
	"slices"
	"sync"
	"time"

	"github.com/anacrolix/torrent"

	"moobi/images/swarm"
)

const (
	// suggestBytes is about how much of an image the seeder suggests at
	// first to a node it has not measured yet: 8 pieces of 256 KiB, 0.3 s
	// of a 1 Gbit/s link shared by 16 nodes, 3 s of a 100 Mbit/s one.
	suggestBytes = 2 << 20
	// suggestLooks is how many looks' worth (restEvery) of what the seeder
	// has lately sent a node per look it suggests to that node: enough that
	// a node does not run out between looks, and grows its share quickly
	// when it does; little enough that a slow node's suggestion lasts well
	// within suggestFor.
	suggestLooks = 8
	// suggestMin is the fewest pieces suggested to a node: its request
	// pipeline to the seeder (swarm.MaxRequestsPerPeer blocks, 2 pieces
	// of 256 KiB).
	suggestMin = 2
	// suggestFor is how long a piece stays suggested to one node before it
	// may be suggested to another: the node is slow to fetch it, or does
	// not follow suggestions.
	suggestFor = 10 * time.Second
	// muteFor is how long the seeder suggests nothing to a peer it could
	// not send a suggestion to (it does not announce the extension, or its
	// extended handshake had not arrived yet: short, so that a node that
	// just connected is not left out for long).
	muteFor = 3 * time.Second
)

// suggestion is a piece the seeder suggested to a peer, and when.
type suggestion[P comparable] struct {
	peer P
	at   time.Time
}

// assign suggests each of the pieces too few peers hold (scarce) to one of
// peers, at most room(peer) pieces each, and returns who was suggested which.
// A piece the peer it was suggested to has asked the seeder for stays with
// that peer while it is connected: moved to another, it would be sent
// twice. One it has not asked for yet (its request may be on its way,
// behind the node's own uploads) stays within suggestFor; then it goes to
// another. A peer's room limits only what is added. The seeder then
// sends each piece to one node, as a super-seeder does, instead of to
// whichever nodes happen to ask for it first, until every piece is held.
func assign[P comparable](scarce []int, peers []P, room func(P) int, asked func(P, int) bool, prev map[int]suggestion[P], now time.Time) map[int]suggestion[P] {
	next := map[int]suggestion[P]{}
	if len(peers) == 0 {
		return next
	}
	load := make(map[P]int, len(peers))
	free := make(map[P]int, len(peers))
	for _, p := range peers {
		load[p] = 0
		free[p] = room(p)
	}
	for _, i := range scarce {
		sg, ok := prev[i]
		if _, connected := load[sg.peer]; ok && connected && asked(sg.peer, i) {
			next[i] = sg
			load[sg.peer]++
		}
	}
	for _, i := range scarce {
		sg, ok := prev[i]
		if _, done := next[i]; done || !ok {
			continue
		}
		if _, connected := load[sg.peer]; connected && now.Sub(sg.at) < suggestFor {
			next[i] = sg
			load[sg.peer]++
		}
	}
	k := 0
	for _, i := range scarce {
		if _, ok := next[i]; ok {
			continue
		}
		// A piece whose suggestion expired goes to another peer if one
		// has room.
		old, had := prev[i]
		chosen := -1
		for j := range peers {
			c := (k + j) % len(peers)
			if load[peers[c]] < free[peers[c]] && (chosen < 0 || !had || peers[c] != old.peer) {
				chosen = c
				if !had || peers[c] != old.peer {
					break
				}
			}
		}
		if chosen < 0 {
			break // every peer has its share
		}
		next[i] = suggestion[P]{peers[chosen], now}
		load[peers[chosen]]++
		k = (chosen + 1) % len(peers)
	}
	return next
}

// asked records which pieces each connected peer asked the seeder for
// (any block), among the scarce ones: see assign. The library reports
// requests on each connection's reader, under its own lock; the seeder
// reads them at each look.
type asked struct {
	mu sync.Mutex
	m  map[*torrent.PeerConn]map[int]bool
}

// add records that pc asked for a block of piece.
func (a *asked) add(pc *torrent.PeerConn, piece int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[*torrent.PeerConn]map[int]bool{}
	}
	if a.m[pc] == nil {
		a.m[pc] = map[int]bool{}
	}
	a.m[pc][piece] = true
}

// has reports whether pc asked for piece.
func (a *asked) has(pc *torrent.PeerConn, piece int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[pc][piece]
}

// forget forgets pc (its connection closed).
func (a *asked) forget(pc *torrent.PeerConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, pc)
}

// keep forgets, for each of peers, the pieces not in scarce.
func (a *asked) keep(peers []*torrent.PeerConn, scarce []int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	want := make(map[int]bool, len(scarce))
	for _, i := range scarce {
		want[i] = true
	}
	for _, pc := range peers {
		for i := range a.m[pc] {
			if !want[i] {
				delete(a.m[pc], i)
			}
		}
	}
}

// endgame gives each of peers that has no suggestion in want one of the
// scarce pieces that fewest peers have been suggested, when there are
// fewer scarce pieces than peers: the last pieces then go out to several
// nodes at once, a few copies more from the seeder. Each node's download
// link is shared by the node's own peers, which send it what they hold as
// fast as they can; one piece fetched by one node at a time gets a
// fraction of that link, while the seeder's idles.
func endgame[P comparable](scarce []int, peers []P, want map[P][]int) map[P]int {
	if len(scarce) == 0 || len(scarce) >= len(peers) {
		return nil
	}
	copies := make(map[int]int, len(scarce))
	for _, pieces := range want {
		for _, i := range pieces {
			copies[i]++
		}
	}
	out := map[P]int{}
	for _, p := range peers {
		if len(want[p]) > 0 {
			continue
		}
		best := scarce[0]
		for _, i := range scarce[1:] {
			if copies[i] < copies[best] {
				best = i
			}
		}
		out[p] = best
		copies[best]++
	}
	return out
}

// room returns how many pieces to suggest to a connected peer: suggestLooks
// times what the seeder sent it per look lately (sent, averaged over the
// last rateLooks looks), within suggestMin and swarm.MaxSuggest;
// suggestBytes' worth to a peer not measured yet.
func room(sent int64, measured bool, pieceLen int64) int {
	pieceLen = max(1, pieceLen)
	if !measured {
		return min(swarm.MaxSuggest, max(suggestMin, int(suggestBytes/pieceLen)))
	}
	n := (suggestLooks*sent + pieceLen - 1) / pieceLen
	return int(min(swarm.MaxSuggest, max(suggestMin, n)))
}

// suggest tells the connected peers of e that lack pieces which of the
// pieces fewer than copies peers hold to ask the seeder for (v from look),
// and, while there are such pieces, to ask it for no other: the seeder's
// link then carries pieces that have not left it yet, not a second copy of
// one a node could get from its peers. A peer with no suggestion then asks
// the seeder for nothing until every piece is held. With copies 0 (no
// rest), or once every piece is held, suggestions are withdrawn.
func (s *Seeder) suggest(e *entry, v restView, copies int, now time.Time) {
	var scarce []int
	if copies > 0 {
		for i, n := range v.holders {
			if n < copies {
				scarce = append(scarce, i)
			}
		}
	}
	if e.told == nil {
		e.told = map[*torrent.PeerConn]swarm.Suggestion{}
		e.mute = map[*torrent.PeerConn]time.Time{}
	}
	var peers []*torrent.PeerConn
	for _, pc := range v.lacking {
		if at, ok := e.mute[pc]; !ok || now.Sub(at) >= muteFor {
			peers = append(peers, pc)
		}
	}
	pieceLen := e.t.Info().PieceLength
	e.suggested = assign(scarce, peers, func(pc *torrent.PeerConn) int {
		w, ok := v.sent[pc]
		return room(w, ok, pieceLen)
	}, s.asked.has, e.suggested, now)
	s.asked.keep(v.peers, scarce)
	want := map[*torrent.PeerConn][]int{}
	for i, sg := range e.suggested {
		want[sg.peer] = append(want[sg.peer], i)
	}
	for pc, i := range endgame(scarce, peers, want) {
		want[pc] = []int{i}
	}
	only := len(scarce) > 0
	for _, pc := range peers {
		w := want[pc]
		slices.Sort(w)
		told, ok := e.told[pc]
		if !ok && len(w) == 0 && !only {
			continue
		}
		if ok && told.Only == only && slices.Equal(w, told.Pieces) {
			continue
		}
		sg := swarm.Suggestion{Pieces: w, Only: only}
		if err := pc.WriteExtendedMessage(swarm.SuggestExtension, swarm.EncodeSuggest(sg)); err != nil {
			e.mute[pc] = now
			for _, i := range w {
				if e.suggested[i].peer == pc { // not an endgame copy of another's
					delete(e.suggested, i)
				}
			}
			continue
		}
		e.told[pc] = sg
	}
	connected := map[*torrent.PeerConn]bool{}
	for _, pc := range v.peers {
		connected[pc] = true
	}
	for pc := range e.told {
		if !connected[pc] {
			delete(e.told, pc)
		}
	}
	for pc := range e.mute {
		if !connected[pc] {
			delete(e.mute, pc)
		}
	}
}
