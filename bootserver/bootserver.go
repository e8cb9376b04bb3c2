// Package bootserver runs the appliance's boot services — proxy DHCP on
// ports 67 and 4011, TFTP and HTTP — over one inventory, under one context:
// they start together, and when the context ends they stop together, HTTP
// draining its requests first.
package bootserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"moobi/bootserver/fileroot"
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
	"moobi/nodeapi"
	"moobi/nodes"
	"moobi/power/poller"
)

// Service is the set of boot services over one inventory store.
type Service struct {
	Store   *inventory.Store
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// HUP delivers reload requests (SIGHUP) to the inventory watcher.
	HUP <-chan os.Signal
	// SeedPort is the seeder's BitTorrent port (swarm.DefaultPort if 0).
	SeedPort int
	Signer   httpd.Signer // signs boot configs (see httpd.Server)
	// Dashboard, if set, is served at /.
	Dashboard http.Handler
	// PowerPollInterval is how often the BMCs' power state is read
	// (poller.DefaultInterval if 0).
	PowerPollInterval time.Duration

	serverIP   net.IP
	web        atomic.Pointer[httpd.Server] // answers grub's TFTP fetches
	env        atomic.Pointer[envEntry]
	listedMACs atomic.Pointer[listedEntry]
	poll       atomic.Pointer[poller.Poller] // see powerPoll
}

// listedEntry is the set of MACs (as net.HardwareAddr.String gives them)
// that one inventory snapshot lists in hosts.yaml.
type listedEntry struct {
	inv  *inventory.Inventory
	macs map[string]bool
}

// listed reports whether the inventory in force lists mac in hosts.yaml
// (not as an unknown host): the node registry's Listed.
func (s *Service) listed(mac string) bool {
	inv := s.Store.Current()
	e := s.listedMACs.Load()
	if e == nil || e.inv != inv {
		e = &listedEntry{inv: inv, macs: make(map[string]bool, len(inv.Hosts))}
		for _, h := range inv.Hosts {
			e.macs[h.MAC.String()] = true
		}
		s.listedMACs.Store(e)
	}
	return e.macs[mac]
}

type envEntry struct {
	inv *inventory.Inventory
	env proxydhcp.Env
}

// Run opens every listener — failing at once if one cannot be opened — and
// serves until ctx ends or a service fails.
func (s *Service) Run(ctx context.Context) error {
	app := s.Store.Current().Appliance
	ip, err := ServerIP(app)
	if err != nil {
		return err
	}
	s.serverIP = ip
	log := s.Log.With("interface", app.Interface, "address", ip.String())
	guard, err := s.adminGuard(app)
	if err != nil {
		return err
	}

	dhcp := make([]*proxydhcp.Server, 0, 2)
	dhcpConns := make([]net.PacketConn, 0, 2)
	// Full DHCP mode answers boot clients itself, on port 67: no proxy.
	var full *fulldhcp.Server
	if app.DHCP.Full() {
		srv, conn, err := s.listenFullDHCP(ctx, app)
		if err != nil {
			return err
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
			return err
		}
		dhcp, dhcpConns = append(dhcp, srv), append(dhcpConns, conn)
	}
	tftpConn, err := tftpd.Listen(net.JoinHostPort(ip.String(), "69"))
	if err != nil {
		closeAll(dhcpConns)
		return err
	}
	httpLn, err := net.Listen("tcp", ":"+strconv.Itoa(app.HTTPPort))
	if err != nil {
		closeAll(append(dhcpConns, tftpConn))
		return fmt.Errorf("http listen on port %d: %w", app.HTTPPort, err)
	}

	cat, err := catalog.Open(filepath.Join(app.DataDir, "images"))
	if err != nil {
		closeAll(append(dhcpConns, tftpConn))
		httpLn.Close()
		return fmt.Errorf("image catalog: %w", err)
	}
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
	nets := bootNetworks(app.Interface)
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
	reg.Observer = s.Metrics
	reg.Listed = s.listed
	// Node states are restored before anything is served.
	statePath := filepath.Join(app.DataDir, "state", "nodes.json")
	if err := reg.Load(statePath); err != nil {
		s.Log.Error("node states not restored", "err", err)
	} else {
		s.Log.Info("node states restored", "file", statePath, "nodes", reg.Len())
	}
	s.Metrics.SetSources(seed.Uploaded, func() map[string]int { return reg.Counts(s.Store.Current()) })
	s.Metrics.SetRestSource(seed.Resting)
	s.Metrics.SetHandshakeSource(func() metrics.HandshakesClosed {
		st := seed.HandshakesClosed()
		return metrics.HandshakesClosed{PerAddress: st.OverPerIP, MadeRoom: st.MadeRoom}
	})
	s.Metrics.SetStateAgeSource(reg.StateAges)
	obs := &observer{Metrics: s.Metrics, nodes: reg, inv: s.Store.Current}
	for _, d := range dhcp {
		d.Observer = obs
	}
	if full != nil {
		full.Observer = obs
	}
	tftp := &tftpd.Server{Open: s.openTFTP, Log: s.Log, Observer: obs, Allowed: onNetworks(nets), MaxPerClient: app.TFTPPerClient}
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
	ro := s.rollouts(app, reg, cat, pw)
	web.Rollouts = ro
	web.PowerStates = s.powerPoll().Readings
	s.Metrics.SetPowerSource(s.powerPoll().Counts)
	adminLn, err := adminViews(app, web, guard)
	if err != nil {
		closeAll(append(dhcpConns, tftpConn))
		httpLn.Close()
		return err
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
	g, ctx := errgroup.WithContext(ctx)
	for i := range dhcp {
		g.Go(func() error { return dhcp[i].Serve(ctx, dhcpConns[i]) })
	}
	if full != nil {
		g.Go(func() error { return full.Serve(ctx, dhcpConns[0]) })
	}
	g.Go(func() error { return tftp.Serve(ctx, tftpConn) })
	g.Go(func() error { return web.Serve(ctx, httpLn) })
	if adminLn != nil {
		g.Go(func() error { return web.ServeAdmin(ctx, adminLn) })
	}
	g.Go(func() error { return s.Store.Watch(ctx, s.HUP) })
	g.Go(func() error { return s.powerPoll().Run(ctx) })
	g.Go(func() error { return seed.Run(ctx) })
	g.Go(func() error { return track.Run(ctx) })
	g.Go(func() error { return ro.Run(ctx) })
	g.Go(func() error {
		return reg.Persist(ctx, statePath, 2*time.Second, s.Log.With("component", "nodes"))
	})
	log.Info("appliance serving", "http_port", app.HTTPPort, "hosts", len(s.Store.Current().Hosts))
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("appliance stopped", "err", err)
	return err
}

func closeAll(cs []net.PacketConn) {
	for _, c := range cs {
		c.Close()
	}
}

// ServerIP is the address the appliance advertises: appliance.address, or
// else the boot interface's first IPv4 address.
func ServerIP(app inventory.Appliance) (net.IP, error) {
	if app.Address != nil {
		return app.Address, nil
	}
	ifi, err := net.InterfaceByName(app.Interface)
	if err != nil {
		return nil, fmt.Errorf("boot interface %s: %w", app.Interface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", app.Interface, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("boot interface %s has no IPv4 address; set appliance.address", app.Interface)
}

func (s *Service) baseURL() string {
	port := s.Store.Current().Appliance.HTTPPort
	if port == 80 {
		return "http://" + s.serverIP.String()
	}
	return "http://" + net.JoinHostPort(s.serverIP.String(), strconv.Itoa(port))
}

// dhcpEnv is the proxy's view of the inventory in force, built once per
// inventory snapshot.
func (s *Service) dhcpEnv() proxydhcp.Env {
	inv := s.Store.Current()
	if e := s.env.Load(); e != nil && e.inv == inv {
		return e.env
	}
	app := inv.Appliance
	files := map[proxydhcp.Firmware]string{}
	for fw, name := range map[proxydhcp.Firmware]string{
		proxydhcp.FirmwareBIOS: app.BIOSBinary, proxydhcp.FirmwareEFIx64: app.UEFIBinary, proxydhcp.FirmwareEFIarm64: app.ARM64Binary,
	} {
		if st, err := os.Stat(filepath.Join(app.IPXEDir, name)); err == nil && st.Mode().IsRegular() {
			files[fw] = name
		} else {
			s.Log.Warn("iPXE binary missing: such clients get no answer", "firmware", fw, "file", filepath.Join(app.IPXEDir, name))
		}
	}
	base := s.baseURL()
	// With unknown_hosts naming a profile every MAC boots: no need to
	// look each one up (and build a Host for it).
	_, bootsAll := inv.Profiles[app.UnknownHosts]
	env := proxydhcp.Env{
		ServerIP: s.serverIP,
		Boots: func(mac net.HardwareAddr) bool {
			if bootsAll {
				return true
			}
			_, _, ok := inv.Lookup(mac)
			return ok
		},
		ScriptURL: func(mac net.HardwareAddr) string { return httpd.ScriptURL(base, mac) },
		BootFiles: files,
		BinaryURL: func(name string) string { return base + httpd.IPXEPath(name) },
	}
	env.SecureBoot, env.ShimFile = secureBootEnv(inv, s.Log)
	s.env.Store(&envEntry{inv: inv, env: env})
	return env
}

// openTFTP opens a file a TFTP client asked for. The iPXE binaries named in
// the appliance settings are opened as the operator named them: packages
// install them as symlinks (Debian's ipxe.efi points into /boot). Any other
// name is looked up in data_dir/tftp, and may not leave it.
func (s *Service) openTFTP(name string) (*os.File, error) {
	if f, ok, err := s.openSecureBoot(name); ok {
		return f, err
	}
	app := s.Store.Current().Appliance
	for _, bin := range []string{app.BIOSBinary, app.UEFIBinary, app.ARM64Binary} {
		if name == bin {
			return os.Open(filepath.Join(app.IPXEDir, bin))
		}
	}
	return fileroot.Roots{filepath.Join(app.DataDir, "tftp")}.Open(name)
}

// bootNetworks lists the IPv4 and IPv6 networks of the boot interface: the
// tracker serves peers in them only.
func bootNetworks(ifname string) []netip.Prefix {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil
	}
	addrs, _ := ifi.Addrs()
	var out []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	return out
}

// observer passes what the proxy DHCP server saw to the metrics and to the
// node registry.
type observer struct {
	*metrics.Metrics
	nodes *nodes.Registry
	inv   func() *inventory.Inventory
}

func (o *observer) DHCPReply(mac net.HardwareAddr, d proxydhcp.Decision, port int) {
	o.Metrics.DHCPReply(mac, d, port)
	name := ""
	if h, _, ok := o.inv().Lookup(mac); ok {
		name = h.Name
	}
	ipxe := d.Firmware == proxydhcp.FirmwareIPXE
	what := "proxy DHCP: " + d.BootFile
	if ipxe {
		what = "proxy DHCP: iPXE asked for its script"
	}
	// iPXE asks again after the firmware loaded it over TFTP: the same
	// boot, still in the firmware stage. A machine whose boot ROM is iPXE
	// starts its boot here.
	o.nodes.SeenDHCP(mac, name, ipxe, what)
}

// TFTPTransfer marks a node that fetched its iPXE binary (known by the
// address it asked the site DHCP server for) as in the firmware stage.
func (o *observer) TFTPTransfer(ip net.IP, file string, r tftpd.Result) {
	o.Metrics.TFTPTransfer(ip, file, r)
	if r != tftpd.ResultOK {
		return
	}
	state := nodeapi.StateFirmware
	if httpd.KernelFetch(file) {
		state = nodeapi.StateKernel // grub's kernel and initrds (Secure Boot)
	}
	o.nodes.SeenAt(ip.String(), state, "TFTP: "+file)
}

// DHCPAddress records the address a node the inventory boots asked the
// site DHCP server for.
func (o *observer) DHCPAddress(mac net.HardwareAddr, addr netip.Addr) {
	if h, _, ok := o.inv().Lookup(mac); ok {
		o.nodes.Addressed(mac, h.Name, addr)
	}
}
