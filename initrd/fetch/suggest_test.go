package fetch

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"golang.org/x/time/rate"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

// TestSuggestOnly: a node client with the handlers fetch installs for the
// appliance's seeder (takeSuggestions, keepAppliance) gets, over the wire, a suggestion that asks for piece 3 and no other; from then on it
// asks the seeder for piece 3 only, although the seeder has them all and
// nobody else does. A suggestion without SuggestOnly lifts that, and the
// node completes.
func TestSuggestOnly(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	const pieceLen = 64 << 10
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 16*pieceLen, pieceLen)
	// The seeder sends slowly: the requests the node made before it was
	// told are still being served when it is.
	scfg := swarm.Config(0, discard)
	scfg.UploadRateLimiter = rate.NewLimiter(256<<10, 64<<10)
	seed := swarmtest.Client(t, scfg)
	st := swarmtest.Add(t, seed, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})

	ncfg := swarm.NodeConfig(0, discard)
	asked := swarmtest.CountRequests(ncfg)
	app := netip.MustParseAddr("127.0.0.1")
	told := make(chan []int, 1)
	swarm.AcceptSuggestions(ncfg, takeSuggestions(app, told, discard))
	ncfg.Callbacks.PeerConnAdded = append(ncfg.Callbacks.PeerConnAdded, keepAppliance(app))
	node := swarmtest.Client(t, ncfg)
	nt := swarmtest.Add(t, node, ib, ih, &piecestore.File{Path: filepath.Join(t.TempDir(), "cache")})

	nt.DownloadAll()
	nt.AddPeers([]torrent.PeerInfo{{Addr: seed.ListenAddrs()[0].(*net.TCPAddr), Trusted: true}})
	tell := func(sg swarm.Suggestion) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			for _, pc := range st.PeerConns() {
				if err := pc.WriteExtendedMessage(swarm.SuggestExtension, swarm.EncodeSuggest(sg)); err == nil {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("could not tell the node %v in 30 s", sg)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	tell(swarm.Suggestion{Pieces: []int{3}, Only: true})
	// The handler limits the connection before it hands the pieces on:
	// every request from here on is the node's under the limit.
	select {
	case <-told:
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not take the suggestion in 30 s")
	}
	asked.Reset()

	swarmtest.WaitPieces(t, nt, 3)
	for piece, n := range asked.ByPiece() {
		if piece != 3 {
			t.Errorf("the node asked the seeder for piece %d (%d requests); it was asked for piece 3 only", piece, n)
		}
	}

	tell(swarm.Suggestion{})
	swarmtest.WaitComplete(t, nt, "after the limit was lifted")
}
