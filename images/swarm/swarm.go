// Package swarm holds what the appliance's seeder and the node client share
// about the BitTorrent client: one configuration for a private swarm on a
// boot LAN.
package swarm

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/anacrolix/torrent/storage"
)

// DefaultPort is the TCP port seeders and nodes listen on for peers.
const DefaultPort = 6881

// RequestSize is the block a node asks a peer for: 256 KiB, a whole piece
// of an image up to 500 MiB (catalog.PieceLength), not BitTorrent's usual
// 16 KiB. Every peer in the swarm is a node or the appliance's seeder,
// which serve requests of up to 1 MiB (the library's
// MaxAllocPeerRequestDataPerConn); sixteen times fewer requests and piece
// messages to track cut the download of a 64 MiB image inside a TCG VM
// from 5.0 to 3.9 s, and a node's CPU in a rack of 32 by a fifth. A client
// that refuses such requests (most BitTorrent clients stop at 16 KiB)
// sends a node nothing, and the node turns to the appliance's web seed.
const RequestSize = 256 << 10

// MaxRequestsPerPeer caps the block requests (RequestSize each) a
// downloader keeps outstanding with one peer: 512 KiB, 42 ms of a
// 100 Mbit/s link (first measured with 32 blocks of 16 KiB; 32 blocks of
// 256 KiB put a rack of 100 behind 10 Mbit/s at 1.81x the bound instead
// of 1.65x, and first bytes at 3.2 s instead of 2.2 s).
//
// anacrolix/torrent v1.61.0 otherwise keeps up to 963 (15 MiB) with every
// peer that allows it (PeerConn.nominalMaxRequests; its own peers
// advertise reqq 1024, client.go localClientReqq), and refills a peer's
// queue only once it is empty (PeerConn.isLowOnRequests). With the
// appliance's seeder, which has every piece and shares its link among the
// whole rack, that queue is seconds deep, and the seeder serves a queue in
// random order (a map, PeerConn.peerRequestServer): the 60 pieces a node
// asked for complete only near the end of the queue, so the node has
// nothing to give its peers meanwhile, and the other nodes, which pick
// the rarest pieces from the same few, ask the appliance for the same
// pieces. A short queue completes pieces within a fraction of a second,
// and leaves what other nodes already hold to be asked of them. The cap
// applies to every peer: between nodes the library's own ramp (twice the
// last batch) stays below it anyway.
//
// Measured (`go run ./bench --only rack`, 64 MiB image, 100 Mbit/s links,
// with startPlan in initrd/fetch): the appliance sent 1.34, 1.60 and 2.02
// times the image to 2, 4 and 8 nodes with the library's queue; 1.08,
// 1.15 and 1.31 with 64 requests; 1.03, 1.12 and 1.24 with 32. A single
// node is as fast as before: the refill waits one LAN round trip, not the
// appliance's queue.
const MaxRequestsPerPeer = max(1, 512<<10/RequestSize)

// MaxRequestsDuration caps the requests outstanding to a peer at what it
// has been sending in this long, and at least one (the library's
// ClientConfig.MaxRequestsDuration, third_party/anacrolix-torrent patch
// 0008). Behind a 10 Mbit/s link that a node's peers share, a peer may
// send it about a block a second, and a second block asked of it waits
// a second or more behind the first: a piece in flight that no other node
// can have from this one meanwhile. Between fast peers the cap stays
// MaxRequestsPerPeer.
//
// Measured (`go run ./bench --only rack --rack-nodes 100 --rack-node-rate
// 10mbit --rack-appliance-rates 10mbit --rack-image-mib 64 --rack-http-max
// 0 --rack-hold-memory`, bound 53.7 s, alternating, with 12 peer
// connections per node): 82.9 and 84.0 s against 86.7 and 87.5 s without.
const MaxRequestsDuration = time.Second

// NodePeerConns caps the peer connections a node keeps per image (the
// library's default is 50, so every node of a rack up to 51 talks to all
// the others). The library plans its requests per peer, over every block
// it wants, again at each change (PeerConn.updateRequests): profiled in a
// rack of 8, that planning was 22 % of the CPU of the clients and the
// appliance, and it grows with the peers a node talks to, although each
// node receives and sends about one image whatever the rack's size.
// Fewer peers also make a rack faster: a node's upload link is shared by
// the peers it sends to at once, and each piece reaches the next node
// only once all of it has arrived; with six peers a node sends each of
// them a piece about twice as fast as with twelve, so pieces travel
// through the rack sooner. Six are still enough to fill a node's link
// from its neighbours; the tracker hands out the appliance first while
// few nodes hold the whole image, and the web seed backs a node up that
// hears nothing for a while.
//
// Measured, with 2 cores shared by all clients: 50 against 12 (`go run
// ./bench --only rack --rack-image-mib 128 --rack-appliance-rates 100mbit
// --rack-http-max 0`): at N = 32 the rack verified in 41.1 s instead of
// 94.1 s, each node used 2.5 s of CPU instead of 5.5 s, and the appliance
// sent 2.81 images instead of 5.15. 6 against 12 (with the requests
// bounded by MaxRequestsDuration): a rack of 100 behind 10 Mbit/s
// (`--rack-nodes 100 --rack-node-rate 10mbit --rack-appliance-rates
// 10mbit --rack-image-mib 64 --rack-http-max 0 --rack-hold-memory`,
// bound 53.7 s) 76.0 s twice against 82.9 and 84.0 s (4 peers 74.4 s, 8
// 80.7 s, 20 92.9 s); a rack of 32 fetching 256 MiB (`--rack-nodes 32
// --rack-http-max 0 --rack-hold-memory`, bound 21.5 s, alternating)
// 26.0 / 25.7 s behind a 100 Mbit/s appliance link against 27.2 / 27.1 s,
// 24.1 / 24.3 s behind 1 Gbit/s against 26.3 / 25.7 s, with 1.36-1.48 s
// of CPU per node against 1.47-1.55 s.
const NodePeerConns = 6

// SeedPeerConns caps the peer connections the appliance's seeder keeps per
// image (the library's default is 50). Sixteen nodes of 100 Mbit/s take
// more than a 1 Gbit/s appliance link can send; the rest of a rack takes
// the image from them and from each other. Fewer nodes asking the
// appliance at once ask it less often for the same pieces: in a rack of
// 32 (128 MiB image, appliance at 100 Mbit/s, seeder.RestCopies 1) it
// sent 1.67 times the image before every piece was held by a node with
// 16 connections, 1.82 times with 50.
const SeedPeerConns = 16

// MaxIncomingHandshakes bounds the incoming connections a client
// handshakes at once; past it, the one handshaking longest is closed to
// make room for the next, so silent connections never keep a peer out. A
// handshake between two Moobi clients takes a millisecond or two.
const MaxIncomingHandshakes = 64

// MaxIncomingHandshakesPerIP bounds the incoming connections from one IP
// address a client handshakes at once; more are closed as they are
// accepted. A peer opens one connection per image.
const MaxIncomingHandshakesPerIP = 8

// defaultReqq is the request queue length the library assumes of a peer
// that does not advertise one (BEP 10 reqq; libtorrent's default too).
const defaultReqq = 250

// peerRequests is the request queue length to take a peer as allowing,
// given the reqq it advertised in its BEP 10 handshake (0: none).
func peerRequests(reqq int) int {
	if reqq <= 0 {
		reqq = defaultReqq
	}
	return min(reqq, MaxRequestsPerPeer)
}

// NodeConfig is Config for a node: at most NodePeerConns peers per image.
func NodeConfig(port int, log *slog.Logger) *torrent.ClientConfig {
	cfg := Config(port, log)
	cfg.EstablishedConnsPerTorrent = NodePeerConns
	return cfg
}

// Config is a client configuration for a private LAN swarm: no DHT, no PEX,
// no uTP, no UPnP; TCP only, without RC4 header obfuscation (it costs CPU
// and hides nothing on a boot VLAN); every torrent seeds once complete.
// Peers come from the appliance's tracker only. Start the client with
// NewClient, which listens for peers itself to bound their handshakes.
func Config(port int, log *slog.Logger) *torrent.ClientConfig {
	cfg := torrent.NewDefaultClientConfig()
	cfg.ListenPort = port
	cfg.Seed = true
	cfg.NoDHT = true
	cfg.DisablePEX = true
	cfg.DisableUTP = true
	cfg.DisableWebtorrent = true
	cfg.NoDefaultPortForwarding = true
	// The library's own defence, refusing a whole /24 for 15 minutes after
	// one failed handshake, would lock a rack out of its boot network.
	cfg.DisableAcceptRateLimiting = true
	// Instead NewClient bounds the handshakes in progress: a host spraying
	// garbage at the port held 10,000 of them open in the appliance, each
	// with its goroutine, buffers and encryption-handshake arithmetic, and
	// the appliance grew to 380 MiB on this 2-core machine.
	// One connection per pair of peers. The library otherwise keeps a
	// second one when both sides dial each other (the seeder dials the
	// nodes the tracker lists, and they dial it), and the duplicate counts
	// against SeedPeerConns and NodePeerConns: in a rack of 16 (`go run
	// ./bench --only rack --rack-nodes 16 --rack-node-rate 10mbit
	// --rack-appliance-rates 100mbit --rack-image-mib 64 --rack-http-max 0
	// --rack-seed-rest-copies 0`, bound 53.7 s) three to five nodes lost their
	// connection to the appliance about 10 s in and verified last, 92.5 s
	// after the start; with duplicates dropped every node kept one and all
	// verified within 58.9–63.9 s.
	cfg.DropDuplicatePeerIds = true
	cfg.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: false}
	cfg.Slogger = log
	// Called before the library reads reqq from the handshake (v1.61.0,
	// PeerConn.onReadExtendedMsg), with the client lock held.
	cfg.Callbacks.ReadExtendedHandshake = func(_ *torrent.PeerConn, m *pp.ExtendedHandshakeMessage) {
		m.Reqq = peerRequests(m.Reqq)
	}
	// No window on the pieces requests are made for. The library considers
	// only the first MaxUnverifiedBytes (default 64 MiB) of the missing
	// pieces, rarest first (request-strategy/order.go: priority, partial,
	// availability, index), for every peer alike: while more than 64 MiB
	// of the image is held by no node yet, that window holds only pieces
	// the appliance alone has, and a node cannot ask another node for
	// anything (for a 128 MiB image, half the download: 4 nodes took 16.5 s
	// and 1.32 times the image from the appliance with the window, 13.2 s
	// and 1.07 times without, both with the request cap). Unverified bytes
	// cost no memory here: they are written to the image file. The price
	// is CPU: each refill of a peer's queue sorts every missing block that
	// peer has (65 536 for a 1 GiB image).
	cfg.MaxUnverifiedBytes = 0
	cfg.MaxRequestsDuration = MaxRequestsDuration
	// Every torrent brings its own storage. Without a default the library
	// would open file storage with a piece-completion database in the
	// working directory.
	cfg.DefaultStorage = noStorage{}
	return cfg
}

// noStorage is the client's default storage: none. Torrents added without
// their own storage fail to open instead of writing somewhere unexpected.
type noStorage struct{}

func (noStorage) OpenTorrent(context.Context, *metainfo.Info, metainfo.Hash) (storage.TorrentImpl, error) {
	return storage.TorrentImpl{}, errors.New("no default storage: the torrent must be added with its own")
}

// Settled waits until no piece of t is being hashed or marked. Call it
// after Torrent.VerifyData before reading completion: a piece's
// verification counts as done a little before its completion is recorded.
func Settled(ctx context.Context, t *torrent.Torrent) error {
	for {
		busy := false
		for i := 0; i < t.NumPieces() && !busy; i++ {
			ps := t.PieceState(i)
			busy = ps.Hashing || ps.QueuedForHash || ps.Marking
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
