package seeder

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"golang.org/x/time/rate"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

// TestSuggestToNodes: the seeder suggests to a real node client, over the
// wire, pieces the node lacks, at most suggestBytes' worth to a node it has
// not measured yet, asks it for no other piece while pieces are held by no
// node, tells a client that does not announce the extension nothing, and
// withdraws its suggestion when it stops resting (copies 0).
func TestSuggestToNodes(t *testing.T) {
	const pieceLen = 256 << 10
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 40*pieceLen, pieceLen)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The seeder uploads slowly: the leechers stay connected and lacking.
	scfg := swarm.Config(0, discard)
	scfg.UploadRateLimiter = rate.NewLimiter(64<<10, 256<<10)
	seedCl := swarmtest.Client(t, scfg)
	seed := swarmtest.Add(t, seedCl, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})

	var mu sync.Mutex
	var got []swarm.Suggestion
	ncfg := swarm.NodeConfig(0, discard)
	swarm.AcceptSuggestions(ncfg, func(_ *torrent.PeerConn, sg swarm.Suggestion, err error) {
		if err != nil {
			t.Errorf("suggestion from the seeder: %v", err)
		}
		mu.Lock()
		got = append(got, sg)
		mu.Unlock()
	})
	node := swarmtest.Client(t, ncfg)
	plain := swarmtest.Client(t, swarm.Config(0, discard)) // no extension
	var leechers []*torrent.Torrent
	for _, c := range []*torrent.Client{node, plain} {
		tor := swarmtest.Add(t, c, ib, ih, &piecestore.File{Path: filepath.Join(t.TempDir(), "cache")})
		tor.DownloadAll()
		leechers = append(leechers, tor)
	}
	seedAddr := seedCl.ListenAddrs()[0].(*net.TCPAddr)

	s := &Seeder{}
	e := &entry{t: seed}
	var offered time.Time
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Offered again each round, as a tracker's announces would.
		if time.Since(offered) >= time.Second {
			for _, tor := range leechers {
				tor.AddPeers([]torrent.PeerInfo{{Addr: seedAddr, Trusted: true}})
			}
			offered = time.Now()
		}
		now := time.Now()
		v := look(seed, 0, nil, nil, &e.watch, now)
		s.suggest(e, v, 1, now)
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 && len(v.peers) == 2 && len(e.mute) == 1 {
			break
		}
		if now.After(deadline) {
			t.Fatalf("after 30 s: %d suggestions received, %d peers connected, %d muted", n, len(v.peers), len(e.mute))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	first := got[0]
	mu.Unlock()
	if want := suggestBytes / pieceLen; len(first.Pieces) != want || !first.Only {
		t.Errorf("suggested %d pieces %v, only %v; want %d (suggestBytes), only (no node holds any piece)", len(first.Pieces), first.Pieces, first.Only, want)
	}
	if len(e.told) != 1 {
		t.Errorf("told %d peers, want only the node (the plain client does not announce %s)", len(e.told), swarm.SuggestExtension)
	}
	for pc := range e.mute {
		if _, told := e.told[pc]; told {
			t.Errorf("peer %v is both muted and told", pc)
		}
	}

	// Resting turned off: the node is told to ask for anything again.
	for {
		now := time.Now()
		v := look(seed, 0, nil, nil, &e.watch, now)
		s.suggest(e, v, 0, now)
		mu.Lock()
		last := got[len(got)-1]
		mu.Unlock()
		if !last.Only && len(last.Pieces) == 0 {
			break
		}
		if now.After(deadline) {
			t.Fatalf("after 30 s the node's last suggestion is %v; want it withdrawn", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
