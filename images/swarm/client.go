package swarm

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/anacrolix/torrent"

	"moobi/images/swarm/admit"
)

// HandshakeLimits are the limits on incoming handshakes of Moobi's clients:
// MaxIncomingHandshakes in all, MaxIncomingHandshakesPerIP from one
// address.
func HandshakeLimits() admit.Limits {
	return admit.Limits{InAll: MaxIncomingHandshakes, PerIP: MaxIncomingHandshakesPerIP}
}

// NewClient is NewAdmittedClient for callers that need not read the
// listener's counts.
func NewClient(cfg *torrent.ClientConfig, lim admit.Limits) (*torrent.Client, error) {
	cl, _, err := NewAdmittedClient(cfg, lim)
	return cl, err
}

// NewAdmittedClient starts a BitTorrent client with cfg (see Config) whose incoming
// peer connections pass through an admit.Listener: at most lim handshakes
// in progress. It listens on TCP itself, on cfg.ListenHost and
// cfg.ListenPort (one dual-stack socket unless cfg disables IPv4 or IPv6),
// hands that listener to the client (Client.AddListener) with a TCP dialer
// (Client.AddDialer) as the library's own sockets would be, and closes it
// when the client closes. The library's TCP sockets are turned off
// (DisableTCP) and cfg.Callbacks.CompletedHandshake tells the listener
// which connections handshook; uTP must be off (Config does that).
//
// anacrolix/torrent v1.61.0 has no limit of its own (Client.acceptConnections
// starts a goroutine per connection) and no hook around its own listener;
// these are its public hooks that do the same from outside.
//
// It returns the admit.Listener too: its Stats count the connections it
// closed (the appliance exports them as metrics).
func NewAdmittedClient(cfg *torrent.ClientConfig, lim admit.Limits) (*torrent.Client, *admit.Listener, error) {
	if !cfg.DisableUTP {
		return nil, nil, fmt.Errorf("start BitTorrent client: uTP is on; its connections would bypass the handshake limits")
	}
	network := "tcp"
	switch {
	case cfg.DisableIPv6:
		network = "tcp4"
	case cfg.DisableIPv4:
		network = "tcp6"
	}
	host := ""
	if cfg.ListenHost != nil {
		host = cfg.ListenHost(network)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.ListenPort))
	// BitTorrent connections manage their own keep-alives (as the library's
	// listen config).
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for peers on %s: %w", addr, err)
	}
	al := admit.Listen(ln, lim)
	prev := cfg.Callbacks.CompletedHandshake
	cfg.Callbacks.CompletedHandshake = func(pc *torrent.PeerConn, ih torrent.InfoHash) {
		if pc.Discovery == torrent.PeerSourceIncoming {
			al.Handshook(pc.RemoteAddr.String())
		}
		if prev != nil {
			prev(pc, ih)
		}
	}
	cfg.DisableTCP = true
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		al.Close()
		return nil, nil, err
	}
	if cfg.DialForPeerConns {
		cl.AddDialer(torrent.NetworkDialer{Network: network, Dialer: lingerless{&net.Dialer{KeepAlive: -1, FallbackDelay: -1}}})
	}
	cl.AddListener(al)
	go func() {
		<-cl.Closed()
		al.Close()
	}()
	return cl, al, nil
}

// lingerless dials TCP connections that close with a reset (SO_LINGER 0),
// as the library's own dialer does.
type lingerless struct{ d *net.Dialer }

func (l lingerless) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := l.d.DialContext(ctx, network, addr)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return c, err
}
