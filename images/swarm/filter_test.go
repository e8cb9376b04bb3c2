package swarm_test

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/anacrolix/torrent"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

// TestRequestFilter: a node whose connection to the seeder has a request
// filter (PeerConn.SetRequestFilter, added to the BitTorrent library in
// third_party/anacrolix-torrent) asks the seeder for the pieces the filter
// accepts and no other, although the seeder has them all and nobody else
// does; once the filter accepts everything, the node completes over the
// same connection.
func TestRequestFilter(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	const pieceLen = 64 << 10
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 16*pieceLen, pieceLen)
	seed := swarmtest.Client(t, swarm.Config(0, discard))
	swarmtest.Add(t, seed, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})

	allowed := map[int]bool{2: true, 5: true}
	var lifted atomic.Bool
	ncfg := swarm.NodeConfig(0, discard)
	asked := swarmtest.CountRequests(ncfg)
	ncfg.Callbacks.PeerConnAdded = append(ncfg.Callbacks.PeerConnAdded, func(pc *torrent.PeerConn) {
		pc.SetRequestFilter(func(piece int) bool { return lifted.Load() || allowed[piece] })
	})
	node := swarmtest.Client(t, ncfg)
	nt := swarmtest.Add(t, node, ib, ih, &piecestore.File{Path: filepath.Join(t.TempDir(), "cache")})
	nt.DownloadAll()
	nt.AddPeers([]torrent.PeerInfo{{Addr: seed.ListenAddrs()[0].(*net.TCPAddr), Trusted: true}})

	swarmtest.WaitPieces(t, nt, 2, 5)
	for piece, n := range asked.ByPiece() {
		if !allowed[piece] {
			t.Errorf("the node asked for piece %d (%d requests); its filter accepts only 2 and 5", piece, n)
		}
	}
	if got := nt.BytesCompleted(); got != 2*pieceLen {
		t.Errorf("the node holds %d bytes, want the 2 pieces its filter accepts (%d)", got, 2*pieceLen)
	}

	// The filter accepts everything now; a piece becoming wanted again
	// makes the library plan the connection's requests again.
	lifted.Store(true)
	nt.Piece(0).SetPriority(torrent.PiecePriorityNone)
	nt.Piece(0).SetPriority(torrent.PiecePriorityNormal)
	swarmtest.WaitComplete(t, nt, "after the filter was lifted")
}
