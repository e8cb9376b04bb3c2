package seeder

import (
	"slices"
	"time"

	"github.com/anacrolix/torrent"

	"moobi/images/swarm"
)

const (
	// suggestBytes is about how much of an image the seeder suggests to
	// one node at a time: 8 pieces of 256 KiB, 0.3 s of a 1 Gbit/s link
	// shared by 16 nodes, 3 s of a 100 Mbit/s one.
	suggestBytes = 2 << 20
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
// peers, at most perPeer pieces each, and returns who was suggested which.
// A piece stays with the peer it was suggested to within suggestFor while
// that peer is still connected; then it goes to another. The seeder then
// sends each piece to one node, as a super-seeder does, instead of to
// whichever nodes happen to ask for it first, until every piece is held.
func assign[P comparable](scarce []int, peers []P, prev map[int]suggestion[P], now time.Time, perPeer int) map[int]suggestion[P] {
	next := map[int]suggestion[P]{}
	if len(peers) == 0 || perPeer <= 0 {
		return next
	}
	load := make(map[P]int, len(peers))
	for _, p := range peers {
		load[p] = 0
	}
	for _, i := range scarce {
		sg, ok := prev[i]
		if _, connected := load[sg.peer]; ok && connected && now.Sub(sg.at) < suggestFor && load[sg.peer] < perPeer {
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
			if load[peers[c]] < perPeer && (chosen < 0 || !had || peers[c] != old.peer) {
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

// suggest tells the connected peers of e that lack pieces which of the
// pieces fewer than copies peers hold to ask the seeder for (v from look),
// and withdraws suggestions that no longer apply.
func (s *Seeder) suggest(e *entry, v restView, copies int, now time.Time) {
	var scarce []int
	for i, n := range v.holders {
		if n < copies {
			scarce = append(scarce, i)
		}
	}
	if e.told == nil {
		e.told = map[*torrent.PeerConn][]int{}
		e.mute = map[*torrent.PeerConn]time.Time{}
	}
	var peers []*torrent.PeerConn
	for _, pc := range v.lacking {
		if at, ok := e.mute[pc]; !ok || now.Sub(at) >= muteFor {
			peers = append(peers, pc)
		}
	}
	perPeer := min(swarm.MaxSuggest, max(1, int(suggestBytes/max(1, e.t.Info().PieceLength))))
	e.suggested = assign(scarce, peers, e.suggested, now, perPeer)
	want := map[*torrent.PeerConn][]int{}
	for i, sg := range e.suggested {
		want[sg.peer] = append(want[sg.peer], i)
	}
	for _, pc := range peers {
		if _, ok := e.told[pc]; !ok && len(want[pc]) == 0 {
			continue
		}
		w := want[pc]
		slices.Sort(w)
		if slices.Equal(w, e.told[pc]) {
			continue
		}
		if err := pc.WriteExtendedMessage(swarm.SuggestExtension, swarm.EncodeSuggest(w)); err != nil {
			e.mute[pc] = now
			for _, i := range w {
				delete(e.suggested, i)
			}
			continue
		}
		e.told[pc] = w
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
