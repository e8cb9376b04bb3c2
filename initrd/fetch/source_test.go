package fetch

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"
)

func TestCountFrom(t *testing.T) {
	app := netip.MustParseAddr("10.99.0.1")
	chunk := &pp.Message{Type: pp.Piece, Piece: make([]byte, 16384)}
	for _, tc := range []struct {
		name string
		peer *torrent.Peer
		want int64
	}{
		{"the appliance's seeder", &torrent.Peer{RemoteAddr: &net.TCPAddr{IP: net.ParseIP("10.99.0.1"), Port: 6881}, Network: "tcp4"}, 16384},
		{"the seeder, IPv4 in IPv6", &torrent.Peer{RemoteAddr: &net.TCPAddr{IP: net.ParseIP("::ffff:10.99.0.1"), Port: 6881}, Network: "tcp"}, 16384},
		{"the seeder over uTP", &torrent.Peer{RemoteAddr: &net.UDPAddr{IP: net.ParseIP("10.99.0.1"), Port: 6881}, Network: "utp/udp"}, 16384},
		{"another node", &torrent.Peer{RemoteAddr: &net.TCPAddr{IP: net.ParseIP("10.99.0.7"), Port: 6881}, Network: "tcp"}, 0},
		{"the web seed, on the appliance's address", &torrent.Peer{RemoteAddr: &net.TCPAddr{IP: net.ParseIP("10.99.0.1"), Port: 8080}, Network: "http"}, 0},
		{"an https web seed", &torrent.Peer{RemoteAddr: &net.TCPAddr{IP: net.ParseIP("10.99.0.1"), Port: 443}, Network: "https"}, 0},
		{"no address", &torrent.Peer{Network: "tcp"}, 0},
		{"no peer", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			countFrom(app, &n)(torrent.ReceivedUsefulDataEvent{Peer: tc.peer, Message: chunk})
			if n.Load() != tc.want {
				t.Errorf("counted %d bytes, want %d", n.Load(), tc.want)
			}
		})
	}
}

func TestApplianceAddr(t *testing.T) {
	for _, tc := range []struct {
		server string
		want   string // "" for an error
	}{
		{"http://10.99.0.1:8080", "10.99.0.1"},
		{"http://[::ffff:10.99.0.1]:8080", "10.99.0.1"},
		{"http://[fd00::1]", "fd00::1"},
		{"http://localhost:8080", "127.0.0.1"},
		{"10.99.0.1:8080", ""},
		{"", ""},
	} {
		ip, err := applianceAddr(context.Background(), tc.server)
		if tc.want == "" {
			if err == nil {
				t.Errorf("applianceAddr(%q) = %v, want an error", tc.server, ip)
			}
			continue
		}
		if err != nil || (ip.String() != tc.want && !(tc.server == "http://localhost:8080" && ip.IsLoopback())) {
			t.Errorf("applianceAddr(%q) = %v, %v; want %s", tc.server, ip, err, tc.want)
		}
	}
}
