package swarm_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

// TestSilentHandshakesDoNotStall: 8 addresses each holding 8 connections
// that never send a byte (64, MaxIncomingHandshakes in all) do not keep a
// real node out: the client still accepts it at once, closing the
// connection that has been silent longest, and the node downloads the
// image from it. The silent connections would be held for the whole test
// (HandshakesTimeout a minute; an attacker reconnecting every 4 s does
// the same with the default).
func TestSilentHandshakesDoNotStall(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	const pieceLen = 64 << 10
	path, data, ib, ih := swarmtest.Image(t, t.TempDir(), 8*pieceLen, pieceLen)
	cfg := swarm.Config(0, discard)
	cfg.HandshakesTimeout = time.Minute
	seed := swarmtest.Client(t, cfg)
	swarmtest.Add(t, seed, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})
	addr := seed.ListenAddrs()[0].(*net.TCPAddr)
	target := net.JoinHostPort("127.0.0.1", fmt.Sprint(addr.Port))

	var held []net.Conn
	for a := 1; a <= 8; a++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(a))}}
		for range swarm.MaxIncomingHandshakesPerIP {
			c, err := d.Dial("tcp", target)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			held = append(held, c)
		}
	}
	if len(held) != swarm.MaxIncomingHandshakes {
		t.Fatalf("%d silent connections, want %d", len(held), swarm.MaxIncomingHandshakes)
	}
	// The client has taken them all (each one's handshake in progress):
	// the last one is still open.
	if err := readErr(held[len(held)-1], 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("last silent connection: read error %v, want it open", err)
	}

	start := time.Now()
	node := swarmtest.Client(t, swarm.NodeConfig(0, discard))
	cache := filepath.Join(t.TempDir(), "cache")
	nt := swarmtest.Add(t, node, ib, ih, &piecestore.File{Path: cache})
	nt.DownloadAll()
	nt.AddPeers([]torrent.PeerInfo{{Addr: addr, Trusted: true}})
	select {
	case <-nt.Complete().On():
	case <-time.After(15 * time.Second):
		t.Fatalf("the node did not download the image in 15 s beside %d silent connections", len(held))
	}
	took := time.Since(start)
	t.Logf("node downloaded the image in %v beside %d silent connections", took.Round(time.Millisecond), len(held))
	got, err := os.ReadFile(cache)
	if err != nil || string(got) != string(data) {
		t.Errorf("the node's copy differs from the image (%v)", err)
	}
	if err := readErr(held[0], 5*time.Second); err == nil || isTimeout(err) {
		t.Errorf("the longest silent connection: read error %v, want it closed to make room", err)
	}
}
