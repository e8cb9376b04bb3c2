// Package swarmtest holds what the BitTorrent tests of the piece store, the
// swarm settings, the seeder and the node's fetch share: random images with
// their torrent info, clients that listen on loopback only, and torrents
// added to them, and what a client asked its peers for.
package swarmtest

import (
	"crypto/rand"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"moobi/images/swarm"
	"moobi/images/swarm/admit"
)

// Image writes size random bytes to dir/rootfs and returns the file's path,
// its contents, and its torrent info (pieces of pieceLen bytes), encoded
// and hashed.
func Image(t testing.TB, dir string, size int, pieceLen int64) (path string, data, infoBytes []byte, ih metainfo.Hash) {
	t.Helper()
	data = make([]byte, size)
	rand.Read(data)
	path = filepath.Join(dir, "rootfs")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	info := metainfo.Info{PieceLength: pieceLen}
	if err := info.BuildFromFilePath(path); err != nil {
		t.Fatal(err)
	}
	ib, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return path, data, ib, metainfo.HashBytes(ib)
}

// Client starts a client with cfg as swarm.NewClient does, with Moobi's
// handshake limits, listening on 127.0.0.1 only, and closes it when the
// test ends.
func Client(t testing.TB, cfg *torrent.ClientConfig) *torrent.Client {
	t.Helper()
	return ClientLimits(t, cfg, swarm.HandshakeLimits())
}

// ClientLimits is Client with the handshake limits lim.
func ClientLimits(t testing.TB, cfg *torrent.ClientConfig, lim admit.Limits) *torrent.Client {
	t.Helper()
	c, err := swarm.NewClient(Loopback(cfg), lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Loopback makes a client started with cfg listen on 127.0.0.1 only (IPv4),
// and returns cfg.
func Loopback(cfg *torrent.ClientConfig) *torrent.ClientConfig {
	cfg.ListenHost = func(string) string { return "127.0.0.1" }
	cfg.DisableIPv6 = true
	return cfg
}

// Add adds the torrent (ib, ih) to c with storage st and waits for its
// info.
func Add(t testing.TB, c *torrent.Client, ib []byte, ih metainfo.Hash, st storage.ClientImpl) *torrent.Torrent {
	t.Helper()
	tor, _ := c.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: ib, Storage: st})
	<-tor.GotInfo()
	return tor
}

// WaitPieces waits up to 30 s until tor holds pieces, and fails the test
// if it does not.
func WaitPieces(t testing.TB, tor *torrent.Torrent, pieces ...int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, i := range pieces {
		for !tor.Piece(i).State().Complete {
			if time.Now().After(deadline) {
				t.Fatalf("after 30 s the torrent holds %d of %d bytes, not pieces %v", tor.BytesCompleted(), tor.Length(), pieces)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// WaitComplete waits up to 30 s until tor holds the whole torrent, and
// fails the test if it does not; when says what the test did before it
// expected that.
func WaitComplete(t testing.TB, tor *torrent.Torrent, when string) {
	t.Helper()
	select {
	case <-tor.Complete().On():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s the torrent holds %d of %d bytes after 30 s", when, tor.BytesCompleted(), tor.Length())
	}
}

// Requests counts the block requests a client sends its peers, by piece.
type Requests struct {
	mu      sync.Mutex
	byPiece map[int]int
}

// CountRequests makes the client to be started with cfg count its block
// requests.
func CountRequests(cfg *torrent.ClientConfig) *Requests {
	r := &Requests{byPiece: map[int]int{}}
	cfg.Callbacks.SentRequest = append(cfg.Callbacks.SentRequest, func(e torrent.PeerRequestEvent) {
		r.mu.Lock()
		r.byPiece[int(e.Index)]++
		r.mu.Unlock()
	})
	return r
}

// Reset forgets the requests counted so far.
func (r *Requests) Reset() {
	r.mu.Lock()
	clear(r.byPiece)
	r.mu.Unlock()
}

// ByPiece returns the requests counted since the start or the last Reset,
// by piece.
func (r *Requests) ByPiece() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.byPiece)
}
