package swarm_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/anacrolix/torrent"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

// TestLargeBlocksArriveIntact has four nodes fetch an image in blocks of
// RequestSize from a seeder and from each other at once, all in one
// process. The data a client reads to answer a request comes from a pool
// shared by all its connections, and goes out through write buffers taken
// from another pool (third_party/anacrolix-torrent, patch 0006): a buffer
// handed out again while its bytes were still to be sent would send one
// block's bytes as another's, or garble the stream. No piece may fail its
// hash, and every node's copy must equal the image.
func TestLargeBlocksArriveIntact(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	const pieceLen = swarm.RequestSize
	path, data, ib, ih := swarmtest.Image(t, t.TempDir(), 24<<20, pieceLen)

	origin := swarmtest.Client(t, swarm.Config(0, discard))
	swarmtest.Add(t, origin, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})
	addrs := []torrent.PeerInfo{{Addr: origin.ListenAddrs()[0].(*net.TCPAddr), Trusted: true}}

	type node struct {
		tor   *torrent.Torrent
		cache string
	}
	var nodes []node
	for range 4 {
		c := swarmtest.Client(t, swarm.NodeConfig(0, discard))
		cache := filepath.Join(t.TempDir(), "cache")
		tor, _ := c.AddTorrentOpt(torrent.AddTorrentOpts{
			InfoHash: ih, InfoBytes: ib, ChunkSize: swarm.RequestSize,
			Storage: &piecestore.File{Path: cache},
		})
		<-tor.GotInfo()
		nodes = append(nodes, node{tor, cache})
		addrs = append(addrs, torrent.PeerInfo{Addr: c.ListenAddrs()[0].(*net.TCPAddr), Trusted: true})
	}
	for _, n := range nodes {
		n.tor.AddPeers(addrs)
		n.tor.DownloadAll()
	}
	var fromNodes int64
	for i, n := range nodes {
		swarmtest.WaitComplete(t, n.tor, "after starting every node")
		st := n.tor.Stats()
		if bad := st.PiecesDirtiedBad.Int64(); bad != 0 {
			t.Errorf("node %d: %d pieces failed their hash", i, bad)
		}
		got, err := os.ReadFile(n.cache)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("node %d: its copy differs from the image", i)
		}
		fromNodes += st.BytesWrittenData.Int64()
	}
	// The nodes served each other too, so the pools were shared by
	// connections both sending and receiving.
	if fromNodes == 0 {
		t.Errorf("the nodes sent each other nothing; the test exercised only the seeder's connections")
	}
}
