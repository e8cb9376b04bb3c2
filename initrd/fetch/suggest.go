package fetch

import (
	"log/slog"
	"net/netip"

	"github.com/anacrolix/torrent"

	"moobi/images/swarm"
)

// takeSuggestions returns the handler of piece suggestions
// (swarm.SuggestExtension): it passes those of the appliance's seeder at ip
// on to ch, the latest replacing one not yet applied, and ignores other
// peers'. A suggestion that asks for no other piece (Only) limits what the
// node requests from the seeder to the pieces it names, at once; the next
// one without it lifts the limit. It runs under the library's lock, so it
// only hands the pieces over.
func takeSuggestions(ip netip.Addr, ch chan []int, log *slog.Logger) func(*torrent.PeerConn, swarm.Suggestion, error) {
	return func(pc *torrent.PeerConn, sg swarm.Suggestion, err error) {
		if !isAddr(pc.RemoteAddr, ip) {
			return
		}
		if err != nil {
			log.Warn("ignoring the appliance's piece suggestion", "peer", pc.RemoteAddr.String(), "err", err)
			return
		}
		if sg.Only {
			only := make(map[int]bool, len(sg.Pieces))
			for _, i := range sg.Pieces {
				only[i] = true
			}
			pc.SetRequestFilter(func(piece int) bool { return only[piece] })
		} else {
			pc.SetRequestFilter(nil)
		}
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- sg.Pieces:
		default:
		}
	}
}

// keepAppliance returns a handler of new connections that keeps the one to
// the appliance's seeder at ip: the node never drops it to make room for
// another peer, even while the seeder suggests nothing to it (it has no
// piece the node may ask for, and looks useless). Dropped, the node would
// lose its place with the seeder to another node, and the pieces the
// seeder was sending it would be sent again to that node.
func keepAppliance(ip netip.Addr) func(*torrent.PeerConn) {
	return func(pc *torrent.PeerConn) {
		if isAddr(pc.RemoteAddr, ip) {
			pc.Keep()
		}
	}
}

// suggest raises the pieces the appliance's seeder suggested above all
// others, so that the node asks it for those first: pieces no node holds
// yet, a different few for each node. The pieces of its previous
// suggestion go back to the priority of the start plan.
func (s *Session) suggest(pieces []int) {
	now := make(map[int]bool, len(pieces))
	for _, i := range pieces {
		now[i] = true
	}
	was := make(map[int]bool, len(s.suggested))
	for _, i := range s.suggested {
		was[i] = true
		if !now[i] {
			s.t.Piece(i).SetPriority(s.plan[i])
		}
	}
	for _, i := range pieces {
		if !was[i] {
			s.t.Piece(i).SetPriority(torrent.PiecePriorityNext)
		}
	}
	s.suggested = pieces
}
