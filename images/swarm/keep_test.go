package swarm_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

// quietPeer listens on loopback as a BitTorrent peer of the torrent ih with
// peer ID id: it answers handshakes, then reads and drops whatever comes
// and sends nothing, so a connection to it stays open for as long as the
// other side keeps it.
func quietPeer(t *testing.T, ih metainfo.Hash, id string) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := pp.Handshake(ctx, c, &ih, peerID(id), pp.PeerExtensionBits{}); err == nil {
					io.Copy(io.Discard, c)
				}
				c.Close()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}

// peerID pads name to a 20-byte peer ID.
func peerID(name string) (id [20]byte) {
	copy(id[:], name)
	return id
}

// TestKeptConnectionsStay: a torrent holding as many connections as it may
// (EstablishedConnsPerTorrent), all of them kept (PeerConn.Keep, added to
// the BitTorrent library in third_party/anacrolix-torrent), turns a new
// peer away instead of dropping one of them to make room. Upstream, the
// seeder's two outgoing connections are one too many against no incoming
// one, and the newcomer replaces one of them.
func TestKeptConnectionsStay(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	const pieceLen = 16 << 10
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 4*pieceLen, pieceLen)
	cfg := swarm.Config(0, discard)
	cfg.EstablishedConnsPerTorrent = 2
	added := make(chan [20]byte, 8)
	cfg.Callbacks.PeerConnAdded = append(cfg.Callbacks.PeerConnAdded, func(pc *torrent.PeerConn) {
		pc.Keep()
		added <- pc.PeerID
	})
	seed := swarmtest.Client(t, cfg)
	tor := swarmtest.Add(t, seed, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})
	waitAdded := func(what string) [20]byte {
		t.Helper()
		select {
		case id := <-added:
			return id
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no connection added within 30 s", what)
			return [20]byte{}
		}
	}

	// The seeder dials two peers: as many connections as it may, both
	// outgoing, both kept.
	kept := map[[20]byte]bool{peerID("moobi-kept-1"): true, peerID("moobi-kept-2"): true}
	var peers []torrent.PeerInfo
	for id := range kept {
		peers = append(peers, torrent.PeerInfo{Addr: quietPeer(t, ih, string(id[:])), Trusted: true})
	}
	tor.AddPeers(peers)
	for range kept {
		if id := waitAdded("dialling the kept peers"); !kept[id] {
			t.Fatalf("connection to %q added, want one of the kept peers", id)
		}
	}

	// A third peer connects to the seeder. The seeder turns it away by
	// closing the accepted connection with a reset; on a busy machine the
	// reset can come before the dial has returned, which is a refusal too.
	newcomer := peerID("moobi-newcomer")
	c, err := net.Dial("tcp", seed.ListenAddrs()[0].String())
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		t.Logf("the newcomer's dial was reset: turned away before its handshake")
	case err != nil:
		t.Fatal(err)
	default:
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pp.Handshake(ctx, c, &ih, newcomer, pp.PeerExtensionBits{}); err == nil {
			// Taken: by the time it is added, the seeder has dropped the
			// connection it made room with.
			if id := waitAdded("the newcomer answered"); id != newcomer {
				t.Fatalf("connection to %q added, want the newcomer", id)
			}
			t.Errorf("the seeder took a new connection while it held as many as it may, all kept")
		}
	}
	var open []string
	for _, pc := range tor.PeerConns() {
		open = append(open, strings.TrimRight(string(pc.PeerID[:]), "\x00"))
		delete(kept, pc.PeerID)
	}
	if len(kept) != 0 {
		t.Errorf("kept connections dropped; open: %q", open)
	}
}
