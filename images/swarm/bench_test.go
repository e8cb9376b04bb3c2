package swarm_test

import (
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/anacrolix/torrent"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

// BenchmarkDownload has a node download a 32 MiB image over loopback from
// a seed that accepts its connection through NewClient's admit.Listener,
// and from one that accepts it on the library's own listener
// (torrent.NewClient, no handshake limits): the listener must cost the
// transfer nothing measurable.
func BenchmarkDownload(b *testing.B) {
	discard := slog.New(slog.DiscardHandler)
	const pieceLen = 256 << 10
	path, _, ib, ih := swarmtest.Image(b, b.TempDir(), 32<<20, pieceLen)
	for _, bc := range []struct {
		name  string
		start func(*torrent.ClientConfig) (*torrent.Client, error)
	}{
		{"admit", func(cfg *torrent.ClientConfig) (*torrent.Client, error) {
			return swarm.NewClient(cfg, swarm.HandshakeLimits())
		}},
		{"library", torrent.NewClient},
	} {
		b.Run(bc.name, func(b *testing.B) {
			seed, err := bc.start(swarmtest.Loopback(swarm.Config(0, discard)))
			if err != nil {
				b.Fatal(err)
			}
			defer seed.Close()
			swarmtest.Add(b, seed, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})
			addr := seed.ListenAddrs()[0].(*net.TCPAddr)
			b.SetBytes(32 << 20)
			b.ResetTimer()
			for range b.N {
				node := swarmtest.Client(b, swarm.NodeConfig(0, discard))
				nt := swarmtest.Add(b, node, ib, ih, &piecestore.File{Path: filepath.Join(b.TempDir(), "cache")})
				nt.DownloadAll()
				nt.AddPeers([]torrent.PeerInfo{{Addr: addr, Trusted: true}})
				swarmtest.WaitComplete(b, nt, "downloading from the seed")
				b.StopTimer()
				node.Close()
				b.StartTimer()
			}
		})
	}
}
