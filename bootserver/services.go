package bootserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"moobi/bootserver/adminauth"
	"moobi/bootserver/fulldhcp"
	"moobi/bootserver/httpd"
	"moobi/bootserver/proxydhcp"
	"moobi/bootserver/tftpd"
	"moobi/images/catalog"
	"moobi/images/seeder"
	"moobi/images/swarm"
	"moobi/images/tracker"
	"moobi/inventory"
	"moobi/metrics"
	"moobi/nodes"
	"moobi/rollout"
)

// sockets are the boot services' listeners, opened before anything is
// built so that a port in use fails Run at once.
type sockets struct {
	// dhcp are the proxy DHCP servers, one per port of dhcpConns; none in
	// full DHCP mode, where full serves dhcpConns[0].
	dhcp      []*proxydhcp.Server
	full      *fulldhcp.Server
	dhcpConns []net.PacketConn
	tftp      *net.UDPConn
	http      net.Listener
}

// listen opens the DHCP (full, or proxy on ports 67 and 4011), TFTP and
// HTTP sockets; on error it closes those it opened.
func (s *Service) listen(ctx context.Context, app inventory.Appliance, ip net.IP) (*sockets, error) {
	dhcp := make([]*proxydhcp.Server, 0, 2)
	dhcpConns := make([]net.PacketConn, 0, 2)
	// Full DHCP mode answers boot clients itself, on port 67: no proxy.
	var full *fulldhcp.Server
	if app.DHCP.Full() {
		srv, conn, err := s.listenFullDHCP(ctx, app)
		if err != nil {
			return nil, err
		}
		full, dhcpConns = srv, append(dhcpConns, conn)
	}
	for _, port := range []int{proxydhcp.PortDHCP, proxydhcp.PortPXE} {
		if full != nil {
			break
		}
		srv := &proxydhcp.Server{Interface: app.Interface, Port: port, Env: s.dhcpEnv, Log: s.Log, Observer: s.Metrics}
		conn, err := srv.Listen()
		if err != nil {
			closeAll(dhcpConns)
			return nil, err
		}
		dhcp, dhcpConns = append(dhcp, srv), append(dhcpConns, conn)
	}
	tftpConn, err := tftpd.Listen(net.JoinHostPort(ip.String(), "69"))
	if err != nil {
		closeAll(dhcpConns)
		return nil, err
	}
	httpLn, err := net.Listen("tcp", ":"+strconv.Itoa(app.HTTPPort))
	if err != nil {
		closeAll(append(dhcpConns, tftpConn))
		return nil, fmt.Errorf("http listen on port %d: %w", app.HTTPPort, err)
	}
	return &sockets{dhcp: dhcp, full: full, dhcpConns: dhcpConns, tftp: tftpConn, http: httpLn}, nil
}

// close closes every socket (when Run fails before serving them).
func (ls *sockets) close() {
	closeAll(append(ls.dhcpConns, ls.tftp))
	ls.http.Close()
}

// services are the appliance's services, built over one inventory.
type services struct {
	seed      *seeder.Seeder
	track     *tracker.Tracker
	reg       *nodes.Registry
	statePath string // where reg persists the node states
	tftp      *tftpd.Server
	web       *httpd.Server
	adminLn   net.Listener // the admin views' listener; nil without one
	ro        *rollout.Runner
}

// build builds the services over the sockets ls: the image catalog, the
// seeder, tracker and node registry (its states restored), the metrics'
// sources, the TFTP and HTTP servers, power and rollouts.
func (s *Service) build(app inventory.Appliance, ip net.IP, ls *sockets, guard *adminauth.Guard) (*services, error) {
	cat, err := catalog.Open(filepath.Join(app.DataDir, "images"))
	if err != nil {
		return nil, fmt.Errorf("image catalog: %w", err)
	}
	nets := bootNetworks(app.Interface)
	svc := s.swarmServices(app, ip, cat, nets)
	seed, reg, track := svc.seed, svc.reg, svc.track
	reg.Observer = s.Metrics
	reg.Listed = s.listed
	// Node states are restored before anything is served.
	svc.statePath = filepath.Join(app.DataDir, "state", "nodes.json")
	if err := reg.Load(svc.statePath); err != nil {
		s.Log.Error("node states not restored", "err", err)
	} else {
		s.Log.Info("node states restored", "file", svc.statePath, "nodes", reg.Len())
	}
	s.Metrics.SetSources(seed.Uploaded, func() map[string]int { return reg.Counts(s.Store.Current()) })
	s.Metrics.SetRestSource(seed.Resting)
	s.Metrics.SetHandshakeSource(func() metrics.HandshakesClosed {
		st := seed.HandshakesClosed()
		return metrics.HandshakesClosed{PerAddress: st.OverPerIP, MadeRoom: st.MadeRoom}
	})
	s.Metrics.SetStateAgeSource(reg.StateAges)
	obs := &observer{Metrics: s.Metrics, nodes: reg, inv: s.Store.Current}
	for _, d := range ls.dhcp {
		d.Observer = obs
	}
	if ls.full != nil {
		ls.full.Observer = obs
	}
	svc.tftp = &tftpd.Server{Open: s.openTFTP, Log: s.Log, Observer: obs, Allowed: onNetworks(nets), MaxPerClient: app.TFTPPerClient}
	web := &httpd.Server{
		Inventory:   s.Store.Current,
		BaseURL:     s.baseURL,
		Metrics:     s.Metrics.Handler(),
		Count:       s.Metrics.HTTPRequest,
		Refused:     s.Metrics.HTTPRefused,
		Log:         s.Log,
		Catalog:     cat,
		Tracker:     track,
		Nodes:       reg,
		NodeInitrd:  func() string { return s.Store.Current().Appliance.NodeInitrd },
		WebSeedSent: s.Metrics.WebSeedSent,
		Signer:      s.Signer,
		Uploaded:    s.Metrics.ApplianceUploaded,
		SwarmCounts: func(ih [20]byte) (int, int) {
			sw := track.Swarm(ih)
			return sw.Seeders, sw.Leechers
		},
		Dashboard: s.Dashboard,
	}
	pw := s.powerRunner()
	web.Power, web.Admin = pw, guard.Wrap
	svc.ro = s.rollouts(app, reg, cat, pw)
	web.Rollouts = svc.ro
	web.PowerStates = s.powerPoll().Readings
	s.Metrics.SetPowerSource(s.powerPoll().Counts)
	svc.adminLn, err = adminViews(app, web, guard)
	if err != nil {
		return nil, err
	}
	s.web.Store(web)
	s.Metrics.SetSwarmSource(func() []metrics.Swarm {
		views, err := web.Swarms()
		if err != nil {
			return nil
		}
		out := make([]metrics.Swarm, 0, len(views))
		for _, v := range views {
			out = append(out, metrics.Swarm{Image: v.Image, Seeders: v.Seeders, Leechers: v.Leechers,
				FromPeers: v.PeerBytes, FromApp: v.NodeBytes - v.PeerBytes})
		}
		return out
	})
	svc.web = web
	return svc, nil
}

// swarmServices builds the seeder of the catalog, the node registry and
// the tracker (serving peers on the boot networks nets), each told of the
// others.
func (s *Service) swarmServices(app inventory.Appliance, ip net.IP, cat *catalog.Catalog, nets []netip.Prefix) *services {
	seedPort := s.SeedPort
	if seedPort == 0 {
		seedPort = swarm.DefaultPort
	}
	seed := &seeder.Seeder{
		Catalog:  cat,
		StateDir: filepath.Join(app.DataDir, "state", "seed"),
		Port:     seedPort,
		Announce: func() string { return s.baseURL() + "/announce" },
		// Mbit/s to bytes/s.
		UploadBytesPerSec: func() int64 { return int64(s.Store.Current().Appliance.SeedUploadMbit) * 1000 * 1000 / 8 },
		RestCopies:        func() int { return s.Store.Current().Appliance.SeedRestCopies },
		Log:               s.Log.With("component", "seeder"),
	}
	reg := nodes.New()
	track := tracker.New(tracker.Options{
		// A rack boots in a minute or two: nodes must learn of each other
		// quickly, and a LAN tracker can afford it.
		Interval: 10 * time.Second,
		Known:    seed.Known,
		Allowed:  onNetworks(nets),
		Origins: func(ap netip.AddrPort) bool {
			return ap.Port() == uint16(seedPort) && ap.Addr().Unmap() == netip.AddrFrom4([4]byte(ip.To4()))
		},
		Booted: bootedAt(reg),
		Log:    s.Log.With("component", "tracker"),
	})
	seed.Seeders = restSeeders(track)
	seed.Booted = bootedAt(reg)
	seed.Listed = track.Listed
	return &services{seed: seed, reg: reg, track: track}
}

// serve runs every service under one errgroup until ctx ends or one
// fails; the context's end is a clean stop.
func (s *Service) serve(ctx context.Context, log *slog.Logger, app inventory.Appliance, ls *sockets, svc *services) error {
	g, ctx := errgroup.WithContext(ctx)
	for i := range ls.dhcp {
		g.Go(func() error { return ls.dhcp[i].Serve(ctx, ls.dhcpConns[i]) })
	}
	if ls.full != nil {
		g.Go(func() error { return ls.full.Serve(ctx, ls.dhcpConns[0]) })
	}
	g.Go(func() error { return svc.tftp.Serve(ctx, ls.tftp) })
	g.Go(func() error { return svc.web.Serve(ctx, ls.http) })
	if svc.adminLn != nil {
		g.Go(func() error { return svc.web.ServeAdmin(ctx, svc.adminLn) })
	}
	g.Go(func() error { return s.Store.Watch(ctx, s.HUP) })
	g.Go(func() error { return s.powerPoll().Run(ctx) })
	g.Go(func() error { return svc.seed.Run(ctx) })
	g.Go(func() error { return svc.track.Run(ctx) })
	g.Go(func() error { return svc.ro.Run(ctx) })
	g.Go(func() error {
		return svc.reg.Persist(ctx, svc.statePath, 2*time.Second, s.Log.With("component", "nodes"))
	})
	log.Info("appliance serving", "http_port", app.HTTPPort, "hosts", len(s.Store.Current().Hosts))
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("appliance stopped", "err", err)
	return err
}
