package proxydhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

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
	log := s.Log.With("mac", req.ClientHWAddr.String(), "xid", req.TransactionID.String(), "port", s.Port, "type", req.MessageType().String())
	d, err := Decide(req, s.Port, s.Env())
	if err != nil {
		if ig, ok := IsIgnore(err); ok {
			log.Debug("no proxy DHCP reply", "reason", ig.Code, "detail", ig.Detail)
			if s.Observer != nil {
				s.Observer.DHCPIgnored(ig.Code, s.Port)
			}
			return
		}
		log.Error("proxy DHCP decision failed", "err", err)
		return
	}
	udpPeer, _ := peer.(*net.UDPAddr)
	dst := Destination(req, udpPeer)
	if _, err := conn.WriteTo(d.Reply.ToBytes(), dst); err != nil {
		log.Warn("proxy DHCP send failed", "to", dst, "err", err)
		return
	}
	log.Info("proxy DHCP reply", "reply", d.Reply.MessageType().String(), "firmware", d.Firmware, "bootfile", d.BootFile, "to", dst)
	if s.Observer != nil {
		s.Observer.DHCPReply(req.ClientHWAddr, d, s.Port)
	}
}
