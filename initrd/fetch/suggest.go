package fetch

import (
	"log/slog"
	"net/netip"

	"github.com/anacrolix/torrent"
)

// takeSuggestions returns the handler of piece suggestions
// (swarm.SuggestExtension): it passes those of the appliance's seeder at ip
// on to ch, the latest replacing one not yet applied, and ignores other
// peers'. It runs under the library's lock, so it only hands them over.
func takeSuggestions(ip netip.Addr, ch chan []int, log *slog.Logger) func(*torrent.PeerConn, []int, error) {
	return func(pc *torrent.PeerConn, pieces []int, err error) {
		if !isAddr(pc.RemoteAddr, ip) {
			return
		}
		if err != nil {
			log.Warn("ignoring the appliance's piece suggestion", "peer", pc.RemoteAddr.String(), "err", err)
			return
		}
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- pieces:
		default:
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
