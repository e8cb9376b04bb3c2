package fetch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/anacrolix/torrent"
)

// applianceAddr is the IP address of the appliance whose HTTP root is
// server: its seeder listens there too.
func applianceAddr(ctx context.Context, server string) (netip.Addr, error) {
	u, err := url.Parse(server)
	if err != nil || u.Hostname() == "" {
		return netip.Addr{}, fmt.Errorf("appliance address %q: not a URL with a host", server)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		return ip.Unmap(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("appliance address: resolve %q: %v", u.Hostname(), err)
	}
	return ips[0].Unmap(), nil
}

// countFrom returns a callback for the BitTorrent client that adds to n
// the useful bytes received from peers at ip over the peer protocol (TCP
// or uTP). A web seed is a peer too, whose address is its URL's host and
// port, with "http" as its network: it is counted apart
// (countingTransport).
func countFrom(ip netip.Addr, n *atomic.Int64) func(torrent.ReceivedUsefulDataEvent) {
	return func(ev torrent.ReceivedUsefulDataEvent) {
		if ev.Peer == nil || ev.Peer.RemoteAddr == nil || ev.Message == nil {
			return
		}
		if strings.HasPrefix(ev.Peer.Network, "http") {
			return
		}
		if !isAddr(ev.Peer.RemoteAddr, ip) {
			return
		}
		n.Add(int64(len(ev.Message.Piece)))
	}
}

// isAddr reports whether a (a peer's address) is ip.
func isAddr(a torrent.PeerRemoteAddr, ip netip.Addr) bool {
	if a == nil {
		return false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap() == ip
}
