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
	"github.com/anacrolix/torrent/storage"
)

// DefaultPort is the TCP port seeders and nodes listen on for peers.
const DefaultPort = 6881

// Config is a client configuration for a private LAN swarm: no DHT, no PEX,
// no uTP, no UPnP; TCP only, without RC4 header obfuscation (it costs CPU
// and hides nothing on a boot VLAN); every torrent seeds once complete.
// Peers come from the appliance's tracker only.
func Config(port int, log *slog.Logger) *torrent.ClientConfig {
	cfg := torrent.NewDefaultClientConfig()
	cfg.ListenPort = port
	cfg.Seed = true
	cfg.NoDHT = true
	cfg.DisablePEX = true
	cfg.DisableUTP = true
	cfg.DisableWebtorrent = true
	cfg.NoDefaultPortForwarding = true
	cfg.DisableAcceptRateLimiting = true
	cfg.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: false}
	cfg.Slogger = log
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
