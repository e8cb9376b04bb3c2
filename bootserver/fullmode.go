package bootserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"moobi/bootserver/fulldhcp"
	"moobi/inventory"
)

// Full DHCP mode settings the inventory does not carry.
const (
	// fullOfferTime holds an offered address for its client.
	fullOfferTime = time.Minute
	// fullBadTime keeps a declined address, or one found answering, out
	// of the pool.
	fullBadTime = 10 * time.Minute
	// fullProbeTimeout is how long an address is pinged before an offer.
	fullProbeTimeout = 500 * time.Millisecond
	// fullCheckWait is how long the start-up check waits for another
	// DHCP server's offer.
	fullCheckWait = 2 * time.Second
)

// LeaseFile is where full DHCP mode keeps its leases, under data_dir.
func LeaseFile(app inventory.Appliance) string {
	return filepath.Join(app.DataDir, "state", "dhcp-leases.json")
}

type fullEnvEntry struct {
	inv *inventory.Inventory
	env fulldhcp.Env
}

// listenFullDHCP checks that no other DHCP server answers on the boot
// VLAN, then opens the full DHCP server's socket and loads its leases.
func (s *Service) listenFullDHCP(ctx context.Context, app inventory.Appliance) (*fulldhcp.Server, net.PacketConn, error) {
	if a, ok := netip.AddrFromSlice(s.serverIP.To4()); !ok || !app.DHCP.Subnet.Contains(a) {
		return nil, nil, fmt.Errorf("full DHCP: the appliance's address %v is not inside appliance.dhcp.subnet %s", s.serverIP, app.DHCP.Subnet)
	}
	if nets := interfaceNetworks(app.Interface); !slices.Contains(nets, app.DHCP.Subnet) {
		return nil, nil, fmt.Errorf("full DHCP: appliance.dhcp.subnet %s is not a network of %s (%v)", app.DHCP.Subnet, app.Interface, nets)
	}
	if err := fulldhcp.CheckAlone(ctx, app.Interface, s.serverIP, fullCheckWait); err != nil {
		return nil, nil, err
	}
	var cache atomic.Pointer[fullEnvEntry]
	srv := &fulldhcp.Server{
		Interface: app.Interface,
		Env:       func() fulldhcp.Env { return s.fullDHCPEnv(&cache) },
		LeaseFile: LeaseFile(app),
		Prober:    fulldhcp.PingProber{Timeout: fullProbeTimeout},
		Log:       s.Log.With("component", "dhcp"),
		Observer:  s.Metrics,
	}
	conn, err := srv.Listen()
	if err != nil {
		return nil, nil, err
	}
	return srv, conn, nil
}

// fullDHCPEnv is full mode's view of the inventory in force, built once
// per inventory snapshot; its boot-file table is proxy mode's.
func (s *Service) fullDHCPEnv(cache *atomic.Pointer[fullEnvEntry]) fulldhcp.Env {
	inv := s.Store.Current()
	if e := cache.Load(); e != nil && e.inv == inv {
		return e.env
	}
	d := inv.Appliance.DHCP
	static := map[netip.Addr]bool{}
	for _, h := range inv.Hosts {
		if h.IP.IsValid() {
			static[h.IP] = true
		}
	}
	boot := s.dhcpEnv()
	env := fulldhcp.Env{
		ServerIP: s.serverIP,
		Subnet:   d.Subnet, RangeStart: d.RangeStart, RangeEnd: d.RangeEnd,
		Router: d.Router, DNS: d.DNS, Domain: d.Domain,
		LeaseTime: d.LeaseTime, OfferTime: fullOfferTime, BadTime: fullBadTime,
		Host: func(mac net.HardwareAddr) fulldhcp.Host {
			h, _, ok := inv.Lookup(mac)
			if !ok {
				return fulldhcp.Host{}
			}
			return fulldhcp.Host{Name: h.Name, IP: h.IP, Boots: boot.Boots(mac)}
		},
		Reserved: func(a netip.Addr) bool { return static[a] },
		Boot:     boot,
	}
	cache.Store(&fullEnvEntry{inv: inv, env: env})
	return env
}

// interfaceNetworks are the boot interface's IPv4 networks.
func interfaceNetworks(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range bootNetworks(name) {
		if p.Addr().Is4() {
			out = append(out, p)
		}
	}
	return out
}
