// Package bootserver runs the appliance's boot services — proxy DHCP on
// ports 67 and 4011, TFTP and HTTP — over one inventory, under one context:
// they start together, and when the context ends they stop together, HTTP
// draining its requests first.
package bootserver

import (
	"context"
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

	"moobi/bootserver/fileroot"
	"moobi/bootserver/httpd"
	"moobi/bootserver/proxydhcp"
	"moobi/bootserver/tftpd"
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
	ls, err := s.listen(ctx, app, ip)
	if err != nil {
		return err
	}
	svc, err := s.build(app, ip, ls, guard)
	if err != nil {
		ls.close()
		return err
	}
	return s.serve(ctx, log, app, ls, svc)
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
