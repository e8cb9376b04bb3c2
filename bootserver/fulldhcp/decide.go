// Package fulldhcp is a DHCP server (RFC 2131) for a boot VLAN with no
// other DHCP server: it hands out addresses — a host's static `ip` from
// hosts.yaml, or one from the pool — with the site options (router, DNS,
// domain), and boot information from the same table as proxy mode
// (proxydhcp.BootFile): an iPXE binary over TFTP for PXE firmware, its
// URL for UEFI HTTP boot, the host's script URL for iPXE.
//
// Decide is the whole policy, a pure function of a request, the settings,
// the address table and the time; Server is the socket loop around it,
// which probes addresses before offering them and keeps leases in a file.
package fulldhcp

import (
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"moobi/bootserver/proxydhcp"
)

// Host is what Decide knows of the client asking.
type Host struct {
	// Name goes in option 12 (host name); "" for unknown hosts.
	Name string
	// IP is the host's static address (invalid: from the pool).
	IP netip.Addr
	// Boots reports whether the appliance boots the host: only then does
	// a boot client get a boot file.
	Boots bool
}

// Env is what Decide needs to know of the appliance, built from the
// inventory in force.
type Env struct {
	// ServerIP is option 54 and siaddr.
	ServerIP net.IP
	// Subnet is the boot VLAN's network (option 1).
	Subnet netip.Prefix
	// RangeStart and RangeEnd bound the pool, both included.
	RangeStart, RangeEnd netip.Addr
	// Router (option 3; invalid: none), DNS (6), Domain (15).
	Router netip.Addr
	DNS    []netip.Addr
	Domain string
	// LeaseTime is option 51; renewal (58) and rebinding (59) times are
	// its half and seven eighths (RFC 2131, section 4.4.5).
	LeaseTime time.Duration
	// OfferTime is how long an offered address is held for the client.
	OfferTime time.Duration
	// BadTime is how long a declined address is not handed out.
	BadTime time.Duration
	// Host returns what the inventory says of a MAC.
	Host func(mac net.HardwareAddr) Host
	// Reserved reports whether addr is some host's static address.
	Reserved func(addr netip.Addr) bool
	// Boot is the boot-file table's environment, shared with proxy mode.
	Boot proxydhcp.Env
}

// Ignore is the reason a request gets no reply (see proxydhcp.Ignore).
type Ignore = proxydhcp.Ignore

// IsIgnore reports whether err is an *Ignore, and returns it.
func IsIgnore(err error) (*Ignore, bool) { return proxydhcp.IsIgnore(err) }

func ignore(code, detail string) *Ignore { return &Ignore{Code: code, Detail: detail} }

// Decision is what Decide chose for one request.
type Decision struct {
	// Reply is nil for messages that get none (DECLINE, RELEASE).
	Reply *dhcpv4.DHCPv4
	// Change is what the table must record before Reply goes out.
	Change Change
	// Probe is set when Reply offers an address not known to be this
	// client's: it must be checked free (nobody answers at it) first.
	Probe bool
	// Boot is the boot file handed out (zero: none).
	Boot proxydhcp.Boot
}

// Decide answers one request that arrived on the DHCP server port.
func Decide(req *dhcpv4.DHCPv4, env Env, t *Table, now time.Time) (Decision, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return Decision{}, ignore("not-request", "opcode "+req.OpCode.String())
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return Decision{}, ignore("not-ethernet", "not an Ethernet client")
	}
	if gw := req.GatewayIPAddr; gw != nil && !gw.IsUnspecified() {
		// RFC 2131, section 4.3.1: a relayed request is served from the
		// relay's subnet; this server has one.
		if a, ok := netip.AddrFromSlice(gw.To4()); !ok || !env.Subnet.Contains(a) {
			return Decision{}, ignore("no-subnet", "relay "+gw.String()+" is not in "+env.Subnet.String())
		}
	}
	mac := req.ClientHWAddr.String()
	host := env.Host(req.ClientHWAddr)
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		addr, probe, err := pick(req, mac, host, env, t, now)
		if err != nil {
			return Decision{}, err
		}
		d := answer(req, dhcpv4.MessageTypeOffer, addr, host, env)
		d.Change = Change{Kind: ChangeOffer, MAC: mac, Addr: addr, Until: now.Add(env.OfferTime)}
		d.Probe = probe
		return d, nil
	case dhcpv4.MessageTypeRequest:
		return request(req, mac, host, env, t, now)
	case dhcpv4.MessageTypeDecline:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(env.ServerIP) {
			return Decision{}, ignore("foreign-server", "DECLINE for server "+sid.String())
		}
		addr := ip4(req.RequestedIPAddress())
		if e, ok := t.lookup(mac); !ok || e.addr != addr {
			return Decision{}, ignore("not-leased", "DECLINE of "+addr.String()+", not this client's")
		}
		return Decision{Change: Change{Kind: ChangeBad, MAC: mac, Addr: addr, Until: now.Add(env.BadTime)}}, nil
	case dhcpv4.MessageTypeRelease:
		addr := ip4(req.ClientIPAddr)
		if e, ok := t.lookup(mac); !ok || e.addr != addr {
			return Decision{}, ignore("not-leased", "RELEASE of "+addr.String()+", not this client's")
		}
		return Decision{Change: Change{Kind: ChangeFree, MAC: mac, Addr: addr}}, nil
	case dhcpv4.MessageTypeInform:
		// RFC 2131, section 3.4: configuration only, no address, no lease time.
		d := answer(req, dhcpv4.MessageTypeAck, netip.Addr{}, host, env)
		d.Reply.ClientIPAddr = req.ClientIPAddr
		d.Reply.Options.Del(dhcpv4.OptionIPAddressLeaseTime)
		d.Reply.Options.Del(dhcpv4.OptionRenewTimeValue)
		d.Reply.Options.Del(dhcpv4.OptionRebindingTimeValue)
		return d, nil
	}
	return Decision{}, ignore("message-type", req.MessageType().String())
}

// request answers a DHCPREQUEST in each of its client states (RFC 2131,
// section 4.3.2).
func request(req *dhcpv4.DHCPv4, mac string, host Host, env Env, t *Table, now time.Time) (Decision, error) {
	sid := req.ServerIdentifier()
	requested := ip4(req.RequestedIPAddress())
	ciaddr := ip4(req.ClientIPAddr)
	var addr netip.Addr
	switch {
	case sid != nil:
		// SELECTING: the client chose an offer; only ours is ours.
		if !sid.Equal(env.ServerIP) {
			return Decision{}, ignore("foreign-server", "REQUEST for server "+sid.String())
		}
		e, ok := t.lookup(mac)
		if !ok || !requested.IsValid() || e.addr != requested {
			return nak(req, env, "REQUEST for "+requested.String()+", not the address offered"), nil
		}
		addr = requested
	case requested.IsValid():
		addr = requested // INIT-REBOOT
	case ciaddr.IsValid():
		addr = ciaddr // RENEWING or REBINDING
	default:
		return Decision{}, ignore("bad-request", "REQUEST with neither server id, requested address nor ciaddr")
	}
	if why := refuse(addr, mac, host, env, t, now); why != "" {
		return nak(req, env, why), nil
	}
	d := answer(req, dhcpv4.MessageTypeAck, addr, host, env)
	d.Change = Change{Kind: ChangeBind, MAC: mac, Addr: addr, Until: now.Add(env.LeaseTime)}
	if ciaddr.IsValid() {
		d.Reply.ClientIPAddr = req.ClientIPAddr
	}
	return d, nil
}

// refuse says why mac may not have addr ("" if it may). This server is
// authoritative for its subnet: an address free in the pool is granted to
// a client it has no record of (a lease file lost, a client moved here).
func refuse(addr netip.Addr, mac string, host Host, env Env, t *Table, now time.Time) string {
	switch {
	case !env.Subnet.Contains(addr):
		return addr.String() + " is not in " + env.Subnet.String()
	case host.IP.IsValid():
		if addr != host.IP {
			return "the host's address is " + host.IP.String()
		}
		return ""
	case env.Reserved(addr):
		return addr.String() + " is another host's static address"
	case t.isBad(addr, now):
		return addr.String() + " was declined or found in use"
	}
	if h, ok := t.holder(addr); ok && h.mac != mac && now.Before(h.expires) {
		return addr.String() + " is leased to " + h.mac
	}
	if !inPool(env, addr) {
		if e, ok := t.lookup(mac); !ok || e.addr != addr {
			return addr.String() + " is outside the pool"
		}
	}
	return ""
}

// pick chooses the address to offer: the host's static address; else the
// client's lease or offer; else the address it asks for, if free; else the
// first free address of the pool, one never leased before another whose
// lease ran out. probe is set for addresses not already this client's.
func pick(req *dhcpv4.DHCPv4, mac string, host Host, env Env, t *Table, now time.Time) (addr netip.Addr, probe bool, err error) {
	if host.IP.IsValid() {
		return host.IP, false, nil
	}
	free := func(a netip.Addr, expiredOK bool) bool {
		if !inPool(env, a) || env.Reserved(a) || t.isBad(a, now) || a == ip4(env.ServerIP) || a == env.Router {
			return false
		}
		h, ok := t.holder(a)
		return !ok || h.mac == mac || (expiredOK && !now.Before(h.expires))
	}
	if e, ok := t.lookup(mac); ok && free(e.addr, false) {
		return e.addr, !now.Before(e.expires), nil
	}
	if a := ip4(req.RequestedIPAddress()); a.IsValid() && free(a, false) {
		return a, true, nil
	}
	for _, expiredOK := range []bool{false, true} {
		for a := env.RangeStart; a.IsValid() && a.Compare(env.RangeEnd) <= 0; a = a.Next() {
			if free(a, expiredOK) {
				return a, true, nil
			}
		}
	}
	return netip.Addr{}, false, ignore("pool-exhausted", "no free address in "+env.RangeStart.String()+"-"+env.RangeEnd.String())
}

func inPool(env Env, a netip.Addr) bool {
	return a.Is4() && env.RangeStart.IsValid() && env.RangeStart.Compare(a) <= 0 && a.Compare(env.RangeEnd) <= 0
}

// answer builds an OFFER or ACK handing addr to the client, with the
// subnet's options and, for a boot client the appliance boots, the boot
// file from the shared table.
func answer(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, addr netip.Addr, host Host, env Env) Decision {
	yi := net.IPv4zero
	if addr.IsValid() {
		yi = net.IP(addr.AsSlice())
	}
	lease := env.LeaseTime
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(yi),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(env.ServerIP)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(env.Subnet.Bits(), 32))),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lease)),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(lease / 2)),
		dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(lease * 7 / 8)),
	}
	if env.Router.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(net.IP(env.Router.AsSlice()))))
	}
	if len(env.DNS) > 0 {
		dns := make([]net.IP, len(env.DNS))
		for i, a := range env.DNS {
			dns[i] = net.IP(a.AsSlice())
		}
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(dns...)))
	}
	if env.Domain != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(env.Domain)))
	}
	if host.Name != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(host.Name)))
	}
	var boot proxydhcp.Boot
	if host.Boots && proxydhcp.IsBootClient(req) {
		// A boot client the table has nothing for (an unknown
		// architecture, a binary missing) still gets its address.
		if b, err := proxydhcp.BootFile(req, env.Boot); err == nil {
			boot = b
			mods = append(mods, dhcpv4.WithServerIP(env.ServerIP))
			switch {
			case b.Class == proxydhcp.ClassHTTP:
				// UEFI HTTP boot takes an offer as HTTP boot's only
				// with vendor class HTTPClient (UEFI 2.5, 24.7.2).
				mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(proxydhcp.ClassHTTP)))
			case b.Firmware == proxydhcp.FirmwareIPXE:
				mods = append(mods, dhcpv4.WithGeneric(optIPXE, ipxeNoProxy))
			}
		}
	}
	reply := proxydhcp.NewReply(req, mods...)
	reply.BootFileName = boot.File
	return Decision{Reply: reply, Boot: boot}
}

// optIPXE is iPXE's encapsulated options (175); ipxeNoProxy is its
// sub-option 176 (no-pxedhcp) set to 1: the offer is the whole answer, so
// iPXE requests it at once instead of waiting a few seconds for a proxy
// DHCP offer that full mode never sends.
var (
	optIPXE     = dhcpv4.GenericOptionCode(175)
	ipxeNoProxy = []byte{176, 1, 1}
)

// nak refuses a REQUEST (RFC 2131, table 3: no address, no options but
// the server identifier and a message).
func nak(req *dhcpv4.DHCPv4, env Env, why string) Decision {
	reply := proxydhcp.NewReply(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithYourIP(net.IPv4zero),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(env.ServerIP)),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)),
	)
	return Decision{Reply: reply, Change: Change{Kind: ChangeNone}}
}

// Destination is where a reply goes (RFC 2131, section 4.1): to the relay;
// a NAK broadcast; to ciaddr when the client has an address; otherwise
// broadcast (this server does not write ARP entries for unicast to a
// client that has no address yet).
func Destination(req, reply *dhcpv4.DHCPv4) *net.UDPAddr {
	if gw := req.GatewayIPAddr; gw != nil && !gw.IsUnspecified() {
		return &net.UDPAddr{IP: gw, Port: dhcpv4.ServerPort}
	}
	if reply.MessageType() != dhcpv4.MessageTypeNak {
		if ci := req.ClientIPAddr; ci != nil && !ci.IsUnspecified() {
			return &net.UDPAddr{IP: ci, Port: dhcpv4.ClientPort}
		}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

// ip4 converts an IPv4 address from the wire; invalid for none or 0.0.0.0.
func ip4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}
