package proxydhcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/net/ipv4"
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

// readBuffer is the receive buffer the proxy asks for: about 5,000
// DISCOVERs, what a rack powering on sends while a garbage collection or
// a busy core holds the server up a few milliseconds. The kernel caps it
// at net.core.rmem_max (twice that, with its bookkeeping).
const readBuffer = 4 << 20

// Listen opens the server's socket: UDP on Port, bound to Interface, with
// broadcast allowed and a receive buffer of up to readBuffer bytes.
func (s *Server) Listen() (net.PacketConn, error) {
	conn, err := server4.NewIPv4UDPConn(s.Interface, &net.UDPAddr{Port: s.Port})
	if err != nil {
		return nil, fmt.Errorf("proxy DHCP listen on %s port %d: %w", s.Interface, s.Port, err)
	}
	if err := conn.SetReadBuffer(readBuffer); err != nil {
		s.Log.Warn("proxy DHCP receive buffer left at the system default", "port", s.Port, "err", err)
	}
	return conn, nil
}

// BatchConn is a packet socket read and written several datagrams per
// system call (recvmmsg and sendmmsg on Linux), as
// golang.org/x/net/ipv4.PacketConn is over a *net.UDPConn.
type BatchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchSize is how many datagrams one read or write system call carries
// at most. A quiet port reads one at a time; a storm is answered
// batchSize packets per pair of system calls.
const batchSize = 32

// Serve answers requests on conn until ctx ends, then closes conn. Packets
// are handled one batch at a time: a decision takes microseconds, and a
// flood queues in the socket buffer instead of in goroutines. conn is
// read and written in batches when it is a BatchConn or a *net.UDPConn.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.Log.Info("proxy DHCP listening", "interface", s.Interface, "port", s.Port)
	bc, ok := conn.(BatchConn)
	if !ok {
		bc = ipv4.NewPacketConn(conn)
	}
	in := make([]ipv4.Message, batchSize)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	out := make([]ipv4.Message, 0, batchSize)
	answers := make([]answer, 0, batchSize)
	for {
		n, err := bc.ReadBatch(in, 0)
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
		out, answers = out[:0], answers[:0]
		for i := range in[:n] {
			a, ok := s.answer(in[i].Buffers[0][:in[i].N], in[i].Addr)
			if !ok {
				continue
			}
			answers = append(answers, a)
			out = append(out, ipv4.Message{Buffers: [][]byte{a.reply}, Addr: a.dst})
		}
		s.send(ctx, bc, out, answers)
	}
}

// send writes the replies of one batch, then logs and observes each. A
// reply the kernel refuses (sendmmsg stops at it) is logged with the
// error, and the rest of the batch is sent after it.
func (s *Server) send(ctx context.Context, bc BatchConn, out []ipv4.Message, answers []answer) {
	for sent := 0; sent < len(out); {
		n, err := bc.WriteBatch(out[sent:], 0)
		n = min(max(n, 0), len(out)-sent)
		if n == 0 && err == nil {
			err = io.ErrShortWrite
		}
		for _, a := range answers[sent : sent+n] {
			s.sent(ctx, a)
		}
		sent += n
		if err != nil && sent < len(out) {
			a := answers[sent]
			s.Log.LogAttrs(ctx, slog.LevelWarn, "proxy DHCP send failed", requestAttrs(a.req, s.Port, slog.Any("to", a.dst), slog.Any("err", err))...)
			sent++
		}
	}
}

// answer is a reply decided on and not yet sent.
type answer struct {
	req   *dhcpv4.DHCPv4
	d     Decision
	dst   *net.UDPAddr
	reply []byte
}

// requestAttrs are the request's log attributes, built only for lines
// that are logged: a storm of ignored packets costs no formatting.
func requestAttrs(req *dhcpv4.DHCPv4, port int, kv ...slog.Attr) []slog.Attr {
	return append([]slog.Attr{
		slog.String("mac", req.ClientHWAddr.String()), slog.String("xid", req.TransactionID.String()),
		slog.Int("port", port), slog.String("type", req.MessageType().String()),
	}, kv...)
}

// answer parses one packet and decides on it. Malformed packets and
// requests the proxy does not answer are logged at debug level and
// counted; ok is false for them.
func (s *Server) answer(pkt []byte, peer net.Addr) (a answer, ok bool) {
	req, err := dhcpv4.FromBytes(pkt)
	if err != nil {
		s.Log.Debug("malformed DHCP packet", "port", s.Port, "client", peer, "len", len(pkt), "err", err)
		if s.Observer != nil {
			s.Observer.DHCPMalformed(s.Port)
		}
		return answer{}, false
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
				s.Log.LogAttrs(ctx, slog.LevelDebug, "no proxy DHCP reply", requestAttrs(req, s.Port, slog.String("reason", ig.Code), slog.String("detail", ig.Detail))...)
			}
			if s.Observer != nil {
				s.Observer.DHCPIgnored(ig.Code, s.Port)
			}
			return answer{}, false
		}
		s.Log.LogAttrs(ctx, slog.LevelError, "proxy DHCP decision failed", requestAttrs(req, s.Port, slog.Any("err", err))...)
		return answer{}, false
	}
	udpPeer, _ := peer.(*net.UDPAddr)
	return answer{req: req, d: d, dst: Destination(req, udpPeer), reply: d.Reply.ToBytes()}, true
}

// sent logs and observes a reply the kernel took.
func (s *Server) sent(ctx context.Context, a answer) {
	// One info line per reply, which operators follow boots by. LogAttrs
	// with typed attributes formats the same line as Info with key-value
	// pairs, without boxing each value.
	if s.Log.Enabled(ctx, slog.LevelInfo) {
		s.Log.LogAttrs(ctx, slog.LevelInfo, "proxy DHCP reply", requestAttrs(a.req, s.Port, slog.String("reply", a.d.Reply.MessageType().String()),
			slog.String("firmware", string(a.d.Firmware)), slog.String("bootfile", a.d.BootFile), slog.Any("to", a.dst))...)
	}
	if s.Observer != nil {
		s.Observer.DHCPReply(a.req.ClientHWAddr, a.d, s.Port)
	}
}
