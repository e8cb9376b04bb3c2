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
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"moobi/bootserver/fileroot"
	"moobi/bootserver/httpd"
	"moobi/bootserver/proxydhcp"
	"moobi/bootserver/tftpd"
	"moobi/inventory"
	"moobi/metrics"
)

// Service is the set of boot services over one inventory store.
type Service struct {
	Store   *inventory.Store
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// HUP delivers reload requests (SIGHUP) to the inventory watcher.
	HUP <-chan os.Signal

	serverIP net.IP
	env      atomic.Pointer[envEntry]
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

	dhcp := make([]*proxydhcp.Server, 0, 2)
	dhcpConns := make([]net.PacketConn, 0, 2)
	for _, port := range []int{proxydhcp.PortDHCP, proxydhcp.PortPXE} {
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

	tftp := &tftpd.Server{Open: s.openTFTP, Log: s.Log, Observer: s.Metrics}
	web := &httpd.Server{
		Inventory: s.Store.Current,
		BaseURL:   s.baseURL,
		Metrics:   s.Metrics.Handler(),
		Count:     s.Metrics.HTTPRequest,
		Log:       s.Log,
	}
	g, ctx := errgroup.WithContext(ctx)
	for i := range dhcp {
		g.Go(func() error { return dhcp[i].Serve(ctx, dhcpConns[i]) })
	}
	g.Go(func() error { return tftp.Serve(ctx, tftpConn) })
	g.Go(func() error { return web.Serve(ctx, httpLn) })
	g.Go(func() error { return s.Store.Watch(ctx, s.HUP) })
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
	env := proxydhcp.Env{
		ServerIP: s.serverIP,
		Boots: func(mac net.HardwareAddr) bool {
			_, _, ok := inv.Lookup(mac)
			return ok
		},
		ScriptURL: func(mac net.HardwareAddr) string { return base + "/boot/" + mac.String() + ".ipxe" },
		BootFiles: files,
	}
	s.env.Store(&envEntry{inv: inv, env: env})
	return env
}

// openTFTP opens a file a TFTP client asked for. The iPXE binaries named in
// the appliance settings are opened as the operator named them: packages
// install them as symlinks (Debian's ipxe.efi points into /boot). Any other
// name is looked up in data_dir/tftp, and may not leave it.
func (s *Service) openTFTP(name string) (*os.File, error) {
	app := s.Store.Current().Appliance
	for _, bin := range []string{app.BIOSBinary, app.UEFIBinary, app.ARM64Binary} {
		if name == bin {
			return os.Open(filepath.Join(app.IPXEDir, bin))
		}
	}
	return fileroot.Roots{filepath.Join(app.DataDir, "tftp")}.Open(name)
}
