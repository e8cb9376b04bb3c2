package proxydhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Observer is told of every reply sent, so the appliance can follow nodes
// through their boot.
type Observer interface {
	DHCPReply(mac net.HardwareAddr, d Decision, port int)
	DHCPIgnored(code string, port int)
	DHCPMalformed(port int)
}

// Server answers proxy DHCP on one port of one interface.
type Server struct {
	// Interface is the boot VLAN interface; the socket is bound to it.
	Interface string
	// Port is PortDHCP or PortPXE.
	Port int
	// Env returns the environment for the next decision (it reads the inventory in force).
	Env func() Env
	Log *slog.Logger
	// Observer, if set, is told of each reply.
	Observer Observer
}

// AddressObserver, implemented by an Observer, is told of the address a
// client asks the site DHCP server for in its DHCPREQUEST (broadcast, so
// the proxy hears it): the address the client is about to use.
type AddressObserver interface {
	DHCPAddress(mac net.HardwareAddr, addr netip.Addr)
}

// RequestedAddress returns the IPv4 address a DHCPREQUEST asks for: its
// requested-address option (SELECTING, INIT-REBOOT) or its ciaddr
// (RENEWING, REBINDING). Other messages have none.
func RequestedAddress(req *dhcpv4.DHCPv4) (netip.Addr, bool) {
	if req.OpCode != dhcpv4.OpcodeBootRequest || req.MessageType() != dhcpv4.MessageTypeRequest {
		return netip.Addr{}, false
	}
	ip := req.RequestedIPAddress()
	if ip == nil || ip.IsUnspecified() {
		ip = req.ClientIPAddr
	}
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, false
	}
	return a, true
}

// Listen opens the server's socket: UDP on Port, bound to Interface, with
// broadcast allowed.
func (s *Server) Listen() (net.PacketConn, error) {
	conn, err := server4.NewIPv4UDPConn(s.Interface, &net.UDPAddr{Port: s.Port})
	if err != nil {
		return nil, fmt.Errorf("proxy DHCP listen on %s port %d: %w", s.Interface, s.Port, err)
	}
	return conn, nil
}

// Serve answers requests on conn until ctx ends, then closes conn. Packets
// are handled one at a time: a decision takes microseconds, and a flood
// queues in the socket buffer instead of in goroutines.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.Log.Info("proxy DHCP listening", "interface", s.Interface, "port", s.Port)
	buf := make([]byte, 1500)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("proxy DHCP port %d: %w", s.Port, err)
			}
			s.Log.Warn("proxy DHCP read", "port", s.Port, "err", err)
			continue
		}
		s.handle(conn, buf[:n], peer)
	}
}

func (s *Server) handle(conn net.PacketConn, pkt []byte, peer net.Addr) {
	req, err := dhcpv4.FromBytes(pkt)
	if err != nil {
		s.Log.Debug("malformed DHCP packet", "port", s.Port, "client", peer, "len", len(pkt), "err", err)
		if s.Observer != nil {
			s.Observer.DHCPMalformed(s.Port)
		}
		return
	}
	// The request's attributes, built only for lines that are logged: a
	// storm of ignored packets costs no formatting.
	attrs := func(kv ...slog.Attr) []slog.Attr {
		return append([]slog.Attr{
			slog.String("mac", req.ClientHWAddr.String()), slog.String("xid", req.TransactionID.String()),
			slog.Int("port", s.Port), slog.String("type", req.MessageType().String()),
		}, kv...)
	}
	ctx := context.Background()
	if ao, ok := s.Observer.(AddressObserver); ok {
		if a, ok := RequestedAddress(req); ok {
			ao.DHCPAddress(req.ClientHWAddr, a)
		}
	}
	d, err := Decide(req, s.Port, s.Env())
	if err != nil {
		if ig, ok := IsIgnore(err); ok {
			if s.Log.Enabled(ctx, slog.LevelDebug) {
				s.Log.LogAttrs(ctx, slog.LevelDebug, "no proxy DHCP reply", attrs(slog.String("reason", ig.Code), slog.String("detail", ig.Detail))...)
			}
			if s.Observer != nil {
				s.Observer.DHCPIgnored(ig.Code, s.Port)
			}
			return
		}
		s.Log.LogAttrs(ctx, slog.LevelError, "proxy DHCP decision failed", attrs(slog.Any("err", err))...)
		return
	}
	udpPeer, _ := peer.(*net.UDPAddr)
	dst := Destination(req, udpPeer)
	if _, err := conn.WriteTo(d.Reply.ToBytes(), dst); err != nil {
		s.Log.LogAttrs(ctx, slog.LevelWarn, "proxy DHCP send failed", attrs(slog.Any("to", dst), slog.Any("err", err))...)
		return
	}
	// One info line per reply, which operators follow boots by. LogAttrs
	// with typed attributes formats the same line as Info with key-value
	// pairs, without boxing each value.
	if s.Log.Enabled(ctx, slog.LevelInfo) {
		s.Log.LogAttrs(ctx, slog.LevelInfo, "proxy DHCP reply", attrs(slog.String("reply", d.Reply.MessageType().String()),
			slog.String("firmware", string(d.Firmware)), slog.String("bootfile", d.BootFile), slog.Any("to", dst))...)
	}
	if s.Observer != nil {
		s.Observer.DHCPReply(req.ClientHWAddr, d, s.Port)
	}
}
