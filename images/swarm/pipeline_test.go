package swarm_test

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

// TestRequestPipelineStaysFull has a node download from a peer that is
// itself still downloading, so that the peer announces a new piece every
// few milliseconds while the node has requests outstanding to it. The
// BitTorrent library (third_party/anacrolix-torrent) once took the requests
// such an update added as the peer's peak and capped the pipeline at twice
// that: one or two blocks in flight. The pipeline must reach the cap
// (MaxRequestsPerPeer) instead.
//
// Each announce of a piece the node wants made the library plan the
// node's requests to that peer again, sorting every block it could ask
// for: 16 % of a node's CPU in a rack of 8. The fork plans again on an
// announce only while fewer than half the requests the peer may have are
// outstanding: no batch of requests may start with the queue at half or
// more.
func TestRequestPipelineStaysFull(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	const pieceLen = 64 << 10 // four blocks: a have every 32 ms from the peer below
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 8<<20, pieceLen)

	// The origin sends 2 MiB/s to the peer; the peer sends 512 KiB/s to the
	// node, so the peer always holds pieces the node lacks.
	scfg := swarm.Config(0, discard)
	scfg.UploadRateLimiter = rate.NewLimiter(2<<20, 256<<10)
	origin := swarmtest.Client(t, scfg)
	swarmtest.Add(t, origin, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})

	pcfg := swarm.NodeConfig(0, discard)
	pcfg.UploadRateLimiter = rate.NewLimiter(512<<10, 64<<10)
	peer := swarmtest.Client(t, pcfg)
	pt := swarmtest.Add(t, peer, ib, ih, &piecestore.File{Path: filepath.Join(t.TempDir(), "cache")})
	pt.DownloadAll()
	originAddr := origin.ListenAddrs()[0].(*net.TCPAddr)
	peerAddr := peer.ListenAddrs()[0].(*net.TCPAddr)

	// Requests the node has outstanding to the peer, from the library's
	// own events; the most seen once the first second has passed.
	var mu sync.Mutex
	var inFlight, most, sent int
	var counting bool
	// A batch: requests sent one after another, with none answered
	// between (one plan, made with the client lock held). topUps counts
	// the batches that started with half the cap or more in flight.
	var inBatch bool
	var topUps, batches int
	isPeer := func(p *torrent.Peer) bool {
		a, ok := p.RemoteAddr.(*net.TCPAddr)
		return ok && a.Port == peerAddr.Port
	}
	ncfg := swarm.NodeConfig(0, discard)
	ncfg.Callbacks.SentRequest = append(ncfg.Callbacks.SentRequest, func(e torrent.PeerRequestEvent) {
		if !isPeer(e.Peer) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if counting && !inBatch {
			batches++
			if inFlight*2 >= swarm.MaxRequestsPerPeer {
				topUps++
			}
		}
		inBatch = true
		inFlight++
		sent++
		if counting {
			most = max(most, inFlight)
		}
	})
	ncfg.Callbacks.DeletedRequest = append(ncfg.Callbacks.DeletedRequest, func(e torrent.PeerRequestEvent) {
		if !isPeer(e.Peer) {
			return
		}
		mu.Lock()
		inFlight--
		inBatch = false
		mu.Unlock()
	})
	node := swarmtest.Client(t, ncfg)
	nt := swarmtest.Add(t, node, ib, ih, &piecestore.File{Path: filepath.Join(t.TempDir(), "cache")})
	nt.DownloadAll()

	pt.AddPeers([]torrent.PeerInfo{{Addr: originAddr, Trusted: true}})
	nt.AddPeers([]torrent.PeerInfo{{Addr: peerAddr, Trusted: true}})
	// Count once the peer holds twice the cap's worth of blocks the node
	// lacks, and until the peer is complete (its announces stop then).
	lead := int64(2 * swarm.MaxRequestsPerPeer * 16 << 10)
	deadline := time.Now().Add(30 * time.Second)
	for pt.BytesCompleted()-nt.BytesCompleted() < lead {
		if pt.Complete().Bool() || time.Now().After(deadline) {
			t.Fatalf("the peer never got %d bytes ahead of the node (peer %d, node %d bytes)", lead, pt.BytesCompleted(), nt.BytesCompleted())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	counting = true
	mu.Unlock()
	for !pt.Complete().Bool() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	counting = false
	if most < swarm.MaxRequestsPerPeer*3/4 {
		t.Errorf("the node kept at most %d requests in flight to a peer announcing pieces as it got them (%d sent in all); want the pipeline near its cap of %d",
			most, sent, swarm.MaxRequestsPerPeer)
	}
	if topUps > 0 {
		t.Errorf("%d of %d batches of requests started with half the cap (%d) or more in flight: the node planned its requests again on announces while its queue to the peer was still at least half full",
			topUps, batches, swarm.MaxRequestsPerPeer/2)
	}
	t.Logf("most requests in flight to the peer: %d of %d; %d sent in %d batches", most, swarm.MaxRequestsPerPeer, sent, batches)
}

// TestSlowPeerQueueIsShort has a node download from a peer that sends
// less than one block a second. Without a bound by time the node would
// keep MaxRequestsPerPeer blocks asked of it, the second waiting behind
// the first for more than a second; in a rack behind slow, shared links
// those queued blocks are pieces no other node can have from this one
// meanwhile. With MaxRequestsDuration (third_party/anacrolix-torrent,
// patch 0008) the node asks such a peer for one block at a time.
func TestSlowPeerQueueIsShort(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	const block = 16 << 10 // the torrent's chunk size (swarmtest.Add)
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 6*block, block)

	// 14 KiB/s: 0.875 blocks in MaxRequestsDuration. The limiter starts
	// empty, so that even the first block arrives at that rate.
	lim := rate.NewLimiter(14<<10, block)
	lim.AllowN(time.Now(), block)
	scfg := swarm.Config(0, discard)
	scfg.UploadRateLimiter = lim
	origin := swarmtest.Client(t, scfg)
	swarmtest.Add(t, origin, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})

	var mu sync.Mutex
	var inFlight, most, answered int
	ncfg := swarm.NodeConfig(0, discard)
	ncfg.Callbacks.SentRequest = append(ncfg.Callbacks.SentRequest, func(torrent.PeerRequestEvent) {
		mu.Lock()
		defer mu.Unlock()
		inFlight++
		if answered > 0 { // the node has measured the peer
			most = max(most, inFlight)
		}
	})
	ncfg.Callbacks.DeletedRequest = append(ncfg.Callbacks.DeletedRequest, func(torrent.PeerRequestEvent) {
		mu.Lock()
		defer mu.Unlock()
		inFlight--
		answered++
	})
	node := swarmtest.Client(t, ncfg)
	nt := swarmtest.Add(t, node, ib, ih, &piecestore.File{Path: filepath.Join(t.TempDir(), "cache")})
	nt.AddPeers([]torrent.PeerInfo{{Addr: origin.ListenAddrs()[0].(*net.TCPAddr), Trusted: true}})
	nt.DownloadAll()
	swarmtest.WaitComplete(t, nt, "downloading from a peer sending 14 KiB/s")

	mu.Lock()
	defer mu.Unlock()
	if most > 1 {
		t.Errorf("the node kept up to %d blocks asked of a peer sending %.2f blocks a second; want one at a time", most, 14.0/16)
	}
	if answered < 5 {
		t.Errorf("only %d of 6 requests answered and counted; the test saw too little to judge", answered)
	}
}
