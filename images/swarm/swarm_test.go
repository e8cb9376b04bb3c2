package swarm

import (
	"log/slog"
	"testing"

	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"
)

func TestPeerRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		reqq int
		want int
	}{
		{"none advertised: the library's 250, capped", 0, MaxRequestsPerPeer},
		{"negative taken as none", -1, MaxRequestsPerPeer},
		{"anacrolix/torrent's 1024", 1024, MaxRequestsPerPeer},
		{"at the cap", MaxRequestsPerPeer, MaxRequestsPerPeer},
		{"below the cap kept", MaxRequestsPerPeer - 1, MaxRequestsPerPeer - 1},
		{"one kept", 1, 1},
	} {
		if got := peerRequests(tc.reqq); got != tc.want {
			t.Errorf("%s: peerRequests(%d) = %d, want %d", tc.name, tc.reqq, got, tc.want)
		}
	}
}

func TestConfigCapsPeerRequests(t *testing.T) {
	cfg := Config(0, nil)
	if cfg.MaxUnverifiedBytes != 0 {
		t.Errorf("MaxUnverifiedBytes = %d, want 0 (no request window)", cfg.MaxUnverifiedBytes)
	}
	m := pp.ExtendedHandshakeMessage{Reqq: 1024}
	cfg.Callbacks.ReadExtendedHandshake(nil, &m)
	if m.Reqq != MaxRequestsPerPeer {
		t.Errorf("after the handshake callback reqq = %d, want %d", m.Reqq, MaxRequestsPerPeer)
	}
}

// A node keeps at most NodePeerConns peers per image; the appliance's
// seeder keeps the library's default, to serve a whole rack.
func TestNodeConfigCapsPeers(t *testing.T) {
	if got := NodeConfig(0, slog.New(slog.DiscardHandler)).EstablishedConnsPerTorrent; got != NodePeerConns {
		t.Errorf("node: %d peer connections per image, want %d", got, NodePeerConns)
	}
	if got := Config(0, slog.New(slog.DiscardHandler)).EstablishedConnsPerTorrent; got <= NodePeerConns {
		t.Errorf("appliance: %d peer connections per image, want the library's default (more than %d)", got, NodePeerConns)
	}
}

// Both the seeder and the nodes keep one connection per pair of peers.
func TestOneConnectionPerPeer(t *testing.T) {
	for name, cfg := range map[string]*torrent.ClientConfig{
		"node":      NodeConfig(0, slog.New(slog.DiscardHandler)),
		"appliance": Config(0, slog.New(slog.DiscardHandler)),
	} {
		if !cfg.DropDuplicatePeerIds {
			t.Errorf("%s: a second connection to a peer already connected is kept", name)
		}
	}
}
