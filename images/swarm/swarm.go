// Package swarm holds what the appliance's seeder and the node client share
// about the BitTorrent client: one configuration for a private swarm on a
// boot LAN.
package swarm

import (
	"log/slog"

	"github.com/anacrolix/torrent"
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
	cfg.DataDir = "" // every torrent gets its own storage
	return cfg
}
