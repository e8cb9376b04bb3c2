package fulldhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/net/ipv4"

	"moobi/bootserver/proxydhcp"
)

// Observer is told of every reply sent (the same as proxy mode's, port 67).
type Observer = proxydhcp.Observer

// Prober checks an address is free before it is offered.
type Prober interface {
	// InUse reports whether something answers at addr.
	InUse(ctx context.Context, addr netip.Addr) (bool, error)
}

// Server is a full DHCP server on one interface.
type Server struct {
	Interface string
	// Env returns the environment for the next decision.
	Env func() Env
	// LeaseFile is where bound leases are kept.
	LeaseFile string
	// Prober, if set, checks each new address before it is offered.
	Prober Prober
	Log    *slog.Logger
	// Observer, if set, is told of each reply.
	Observer Observer
	// Now is the clock (time.Now if nil).
	Now func() time.Time

	mu    sync.Mutex
	table *Table
	// saveMu is held by a save from its snapshot of the table to the
	// rename of the lease file: saves land on disk in the order of their
	// snapshots, so an older one never replaces a newer one.
	saveMu sync.Mutex
	// writeLeases writes the lease file (SaveLeases if nil).
	writeLeases func(path string, leases []Lease) error
	// probes bounds the probes in flight.
	probes chan struct{}
}

// maxProbes is how many addresses are probed at once; a DISCOVER beyond
// that waits for a slot.
const maxProbes = 128

// Listen opens the server's socket (UDP port 67 on Interface) and loads
// the lease file. A corrupt lease file is kept aside and reported at
// error level; the server then starts with no leases.
func (s *Server) Listen() (net.PacketConn, error) {
	if s.Now == nil {
		s.Now = time.Now
	}
	leases, aside, err := LoadLeases(s.LeaseFile, s.Now())
	if err != nil && aside == "" {
		return nil, err
	}
	if err != nil {
		s.Log.Error("DHCP LEASES LOST: the lease file is corrupt; it was kept aside and the server starts with no leases",
			"file", s.LeaseFile, "kept_as", aside, "err", err)
	} else {
		s.Log.Info("DHCP leases loaded", "file", s.LeaseFile, "leases", len(leases))
	}
	s.table = NewTable(leases)
	s.probes = make(chan struct{}, maxProbes)
	conn, err := server4.NewIPv4UDPConn(s.Interface, &net.UDPAddr{Port: dhcpv4.ServerPort})
	if err != nil {
		return nil, fmt.Errorf("DHCP listen on %s port 67: %w", s.Interface, err)
	}
	return conn, nil
}

// batchSize is how many datagrams one read system call carries at most.
// A batch is decided whole, its leases written once, then its replies
// sent: under load one lease file write serves many ACKs.
const batchSize = 64

// Serve answers requests on conn until ctx ends, then closes conn.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.Log.Info("DHCP server listening", "interface", s.Interface, "mode", "full")
	var wg sync.WaitGroup
	defer wg.Wait()
	bc := ipv4.NewPacketConn(conn)
	in := make([]ipv4.Message, batchSize)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	type pending struct {
		req *dhcpv4.DHCPv4
		d   Decision
	}
	var out []pending
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("DHCP server: %w", err)
			}
			s.Log.Warn("DHCP read", "err", err)
			continue
		}
		out = out[:0]
		changed := false
		for i := range in[:n] {
			req, err := dhcpv4.FromBytes(in[i].Buffers[0][:in[i].N])
			if err != nil {
				s.Log.Debug("malformed DHCP packet", "client", in[i].Addr, "len", in[i].N, "err", err)
				if s.Observer != nil {
					s.Observer.DHCPMalformed(proxydhcp.PortDHCP)
				}
				continue
			}
			d, leases, ok := s.decide(ctx, req)
			changed = changed || leases
			if !ok {
				continue
			}
			if !d.Probe || s.Prober == nil {
				out = append(out, pending{req, d})
				continue
			}
			select {
			case s.probes <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-s.probes }()
				s.probeAndSend(ctx, conn, req, d)
			}()
		}
		if changed && !s.save() {
			// A lease that cannot be kept is not granted.
			continue
		}
		for _, p := range out {
			s.send(ctx, conn, p.req, p.d)
		}
	}
}

// save writes the lease file; it logs and reports a failure.
func (s *Server) save() bool {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	leases := s.table.Leases()
	s.mu.Unlock()
	write := s.writeLeases
	if write == nil {
		write = SaveLeases
	}
	if err := write(s.LeaseFile, leases); err != nil {
		s.Log.Error("DHCP leases not saved: the batch's replies are not sent", "file", s.LeaseFile, "err", err)
		return false
	}
	return true
}

// decide runs Decide under the table's lock and applies its change;
// leases reports whether the bound leases changed (the lease file must be
// written before the reply goes out).
func (s *Server) decide(ctx context.Context, req *dhcpv4.DHCPv4) (d Decision, leases, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := Decide(req, s.Env(), s.table, s.Now())
	if err != nil {
		if ig, ok := proxydhcp.IsIgnore(err); ok {
			if s.Log.Enabled(ctx, slog.LevelDebug) {
				s.Log.Debug("no DHCP reply", "mac", req.ClientHWAddr.String(), "xid", req.TransactionID.String(),
					"type", req.MessageType().String(), "reason", ig.Code, "detail", ig.Detail)
			}
			if s.Observer != nil {
				s.Observer.DHCPIgnored(ig.Code, proxydhcp.PortDHCP)
			}
			return Decision{}, false, false
		}
		s.Log.Error("DHCP decision failed", "mac", req.ClientHWAddr.String(), "err", err)
		return Decision{}, false, false
	}
	leases = s.table.Apply(d.Change)
	switch d.Change.Kind {
	case ChangeFree:
		s.Log.Info("DHCP release", "mac", d.Change.MAC, "addr", d.Change.Addr.String())
	case ChangeBad:
		s.Log.Warn("DHCP decline: address kept out of the pool", "mac", d.Change.MAC, "addr", d.Change.Addr.String(), "until", d.Change.Until)
	}
	return d, leases, d.Reply != nil
}

// probeAndSend checks the offered address is free and sends the offer;
// an address found in use is kept out of the pool and the request
// decided again, a few times at most.
func (s *Server) probeAndSend(ctx context.Context, conn net.PacketConn, req *dhcpv4.DHCPv4, d Decision) {
	for try := 0; try < 4; try++ {
		addr := d.Change.Addr
		used, err := s.Prober.InUse(ctx, addr)
		if err != nil {
			s.Log.Warn("DHCP address probe failed; offering it anyway", "addr", addr.String(), "err", err)
		}
		if !used {
			s.send(ctx, conn, req, d)
			return
		}
		s.Log.Warn("DHCP address in use by a host without a lease: kept out of the pool", "addr", addr.String(), "mac", req.ClientHWAddr.String())
		s.mu.Lock()
		s.table.Apply(Change{Kind: ChangeBad, MAC: d.Change.MAC, Addr: addr, Until: s.Now().Add(s.Env().BadTime)})
		s.mu.Unlock()
		var ok, leases bool
		d, leases, ok = s.decide(ctx, req)
		if leases && !s.save() || !ok {
			return
		}
		if !d.Probe {
			s.send(ctx, conn, req, d)
			return
		}
	}
}

func (s *Server) send(ctx context.Context, conn net.PacketConn, req *dhcpv4.DHCPv4, d Decision) {
	dst := Destination(req, d.Reply)
	if _, err := conn.WriteTo(d.Reply.ToBytes(), dst); err != nil {
		s.Log.Warn("DHCP send failed", "mac", req.ClientHWAddr.String(), "to", dst, "err", err)
		return
	}
	if s.Log.Enabled(ctx, slog.LevelInfo) {
		s.Log.LogAttrs(ctx, slog.LevelInfo, "DHCP reply",
			slog.String("mac", req.ClientHWAddr.String()), slog.String("xid", req.TransactionID.String()),
			slog.Int("port", proxydhcp.PortDHCP), slog.String("type", req.MessageType().String()),
			slog.String("reply", d.Reply.MessageType().String()), slog.String("addr", d.Reply.YourIPAddr.String()),
			slog.String("firmware", string(d.Boot.Firmware)), slog.String("bootfile", d.Boot.File), slog.Any("to", dst))
	}
	if ao, ok := s.Observer.(proxydhcp.AddressObserver); ok && d.Change.Kind == ChangeBind {
		ao.DHCPAddress(req.ClientHWAddr, d.Change.Addr)
	}
	if s.Observer != nil && d.Boot.File != "" {
		s.Observer.DHCPReply(req.ClientHWAddr, proxydhcp.Decision{Reply: d.Reply, Firmware: d.Boot.Firmware, BootFile: d.Boot.File}, proxydhcp.PortDHCP)
	}
}
