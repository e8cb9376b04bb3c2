package inventory

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DHCP modes (appliance.dhcp, or appliance.dhcp.mode).
const (
	// DHCPProxy answers boot firmware with boot information only, beside
	// the site's DHCP server (the default).
	DHCPProxy = "proxy"
	// DHCPFull hands out addresses too, on a boot VLAN with no other
	// DHCP server.
	DHCPFull = "full"
)

// DefaultLeaseTime is appliance.dhcp.lease_time when unset.
const DefaultLeaseTime = time.Hour

// DHCP is the `appliance.dhcp` setting: a mode alone (`dhcp: full`), or a
// mapping with `mode` and the full-mode address settings.
type DHCP struct {
	// Mode is DHCPProxy or DHCPFull.
	Mode string
	// Subnet is the boot VLAN's IPv4 network (option 1, subnet mask):
	// `subnet`, or else the boot interface's network when the interface
	// exists where the file is read.
	Subnet netip.Prefix
	// RangeStart and RangeEnd bound the pool handed to hosts without a
	// static `ip` (`range: START-END`, both included).
	RangeStart, RangeEnd netip.Addr
	// Router is option 3 (invalid: none).
	Router netip.Addr
	// DNS is option 6.
	DNS []netip.Addr
	// Domain is option 15.
	Domain string
	// LeaseTime is option 51.
	LeaseTime time.Duration
	line      int
}

// Full reports whether the appliance hands out addresses.
func (d DHCP) Full() bool { return d.Mode == DHCPFull }

// InPool reports whether a is in the dynamic range.
func (d DHCP) InPool(a netip.Addr) bool {
	return d.RangeStart.IsValid() && a.Is4() && d.RangeStart.Compare(a) <= 0 && a.Compare(d.RangeEnd) <= 0
}

var dhcpKeys = []string{"mode", "subnet", "range", "router", "dns", "domain", "lease_time"}

// dhcp parses appliance.dhcp.
func (p *parser) dhcp(k, v *yaml.Node, d *DHCP) {
	d.line = k.Line
	mode := func(s string, line int) {
		if s != DHCPProxy && s != DHCPFull {
			p.errorf(line, "appliance.dhcp %q is neither %q nor %q", s, DHCPProxy, DHCPFull)
		}
		d.Mode = s
	}
	if v.Kind == yaml.ScalarNode {
		mode(p.str(v, "appliance.dhcp"), v.Line)
		return
	}
	p.mapping(v, "appliance.dhcp", dhcpKeys, func(key string, _, v *yaml.Node) {
		if key == "dns" {
			for _, s := range p.strList(v, "appliance.dhcp.dns") {
				a, err := netip.ParseAddr(s)
				if err != nil || !a.Is4() {
					p.errorf(v.Line, "appliance.dhcp.dns: %q is not an IPv4 address", s)
					continue
				}
				d.DNS = append(d.DNS, a)
			}
			return
		}
		s := p.str(v, "appliance.dhcp."+key)
		switch key {
		case "mode":
			mode(s, v.Line)
		case "subnet":
			pr, err := netip.ParsePrefix(s)
			if err != nil || !pr.Addr().Is4() || pr.Bits() > 30 {
				p.errorf(v.Line, "appliance.dhcp.subnet %q is not an IPv4 network like 10.99.0.0/24", s)
				return
			}
			d.Subnet = pr.Masked()
		case "range":
			start, end, ok := strings.Cut(s, "-")
			a, errA := netip.ParseAddr(strings.TrimSpace(start))
			b, errB := netip.ParseAddr(strings.TrimSpace(end))
			if !ok || errA != nil || errB != nil || !a.Is4() || !b.Is4() {
				p.errorf(v.Line, "appliance.dhcp.range %q is not START-END, like 10.99.0.100-10.99.0.200", s)
				return
			}
			if b.Less(a) {
				p.errorf(v.Line, "appliance.dhcp.range %q ends before it starts", s)
				return
			}
			d.RangeStart, d.RangeEnd = a, b
		case "router":
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is4() {
				p.errorf(v.Line, "appliance.dhcp.router %q is not an IPv4 address", s)
				return
			}
			d.Router = a
		case "domain":
			if !validDomain(s) {
				p.errorf(v.Line, "appliance.dhcp.domain %q is not a domain name", s)
			}
			d.Domain = s
		case "lease_time":
			t, err := time.ParseDuration(s)
			if err != nil || t < time.Minute || t > 365*24*time.Hour {
				p.errorf(v.Line, "appliance.dhcp.lease_time %q is not a duration from 1m to 8760h, like 1h", s)
				return
			}
			d.LeaseTime = t
		}
	})
	if d.Mode == "" {
		p.errorf(k.Line, "appliance.dhcp.mode is required (%q or %q)", DHCPProxy, DHCPFull)
	}
}

func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !validHostname(l) {
			return false
		}
	}
	return true
}

// hostIP parses hosts.H.ip.
func (p *parser) hostIP(h *Host, v *yaml.Node) {
	h.ipLine = v.Line
	s := p.str(v, "ip")
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		p.errorf(v.Line, "host %s: ip %q is not an IPv4 address", h.Name, s)
		return
	}
	h.IP = a
}

// checkDHCP fills full mode's defaults and checks the pool and the static
// addresses against each other, once everything is parsed.
func (p *parser) checkDHCP(inv *Inventory, applianceLine int) {
	d := &inv.Appliance.DHCP
	if d.Mode == "" {
		d.Mode = DHCPProxy
	}
	if d.LeaseTime == 0 {
		d.LeaseTime = DefaultLeaseTime
	}
	line := d.line
	if line == 0 {
		line = applianceLine
	}
	if !d.Full() {
		if d.RangeStart.IsValid() || d.Router.IsValid() || len(d.DNS) > 0 || d.Domain != "" {
			p.errorf(line, "appliance.dhcp: range, router, dns and domain apply to mode %q only", DHCPFull)
		}
		for _, name := range sortedKeys(inv.Hosts) {
			if h := inv.Hosts[name]; h.ipLine != 0 {
				p.errorf(h.ipLine, "host %s: ip needs appliance.dhcp mode %q (in proxy mode the site DHCP server hands out addresses)", name, DHCPFull)
			}
		}
		return
	}
	if !d.Subnet.IsValid() {
		if pr, ok := interfaceSubnet(inv.Appliance.Interface); ok {
			d.Subnet = pr
		} else {
			p.errorf(line, "appliance.dhcp.subnet is required: interface %s has no IPv4 address here", inv.Appliance.Interface)
			return
		}
	}
	if !d.RangeStart.IsValid() {
		p.errorf(line, "appliance.dhcp.range is required in full mode (START-END, inside %s)", d.Subnet)
	} else if !d.Subnet.Contains(d.RangeStart) || !d.Subnet.Contains(d.RangeEnd) {
		p.errorf(line, "appliance.dhcp.range %s-%s is not inside the subnet %s", d.RangeStart, d.RangeEnd, d.Subnet)
	}
	if d.Router.IsValid() && !d.Subnet.Contains(d.Router) {
		p.errorf(line, "appliance.dhcp.router %s is not inside the subnet %s", d.Router, d.Subnet)
	}
	var server netip.Addr
	if a := inv.Appliance.Address; a != nil {
		server, _ = netip.AddrFromSlice(a.To4())
		if d.InPool(server) {
			p.errorf(line, "appliance.dhcp.range %s-%s holds the appliance's own address %s", d.RangeStart, d.RangeEnd, server)
		}
		if !d.Subnet.Contains(server) {
			p.errorf(line, "appliance.address %s is not inside appliance.dhcp.subnet %s", server, d.Subnet)
		}
	}
	byIP := map[netip.Addr]*Host{}
	for _, name := range sortedKeys(inv.Hosts) {
		h := inv.Hosts[name]
		if !h.IP.IsValid() {
			continue
		}
		switch {
		case !d.Subnet.Contains(h.IP):
			p.errorf(h.ipLine, "host %s: ip %s is not inside the subnet %s", name, h.IP, d.Subnet)
		case d.InPool(h.IP):
			p.errorf(h.ipLine, "host %s: ip %s is inside the dynamic range %s-%s; pick one outside it", name, h.IP, d.RangeStart, d.RangeEnd)
		case h.IP == d.Subnet.Addr() || h.IP == lastAddr(d.Subnet):
			p.errorf(h.ipLine, "host %s: ip %s is the subnet's network or broadcast address", name, h.IP)
		case h.IP == server || h.IP == d.Router:
			p.errorf(h.ipLine, "host %s: ip %s is the appliance's or the router's address", name, h.IP)
		}
		if other, dup := byIP[h.IP]; dup {
			p.errorf(h.ipLine, "host %s: ip %s is already used by host %s (line %d)", name, h.IP, other.Name, other.ipLine)
		} else {
			byIP[h.IP] = h
		}
	}
}

// lastAddr is the broadcast address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// interfaceSubnet is the first IPv4 network of the named interface.
func interfaceSubnet(name string) (netip.Prefix, bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Prefix{}, false
	}
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			if pr, err := netip.ParsePrefix(n.String()); err == nil {
				return pr.Masked(), true
			}
		}
	}
	return netip.Prefix{}, false
}
