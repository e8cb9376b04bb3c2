package fulldhcp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// PingProber checks an address with one ICMP echo request (as dnsmasq
// does before it offers an address): an address that answers within
// Timeout is in use. It uses an unprivileged ICMP socket where the
// network namespace allows one (net.ipv4.ping_group_range), else a raw
// socket (CAP_NET_RAW).
type PingProber struct {
	Timeout time.Duration
}

// InUse sends an echo request to addr and waits Timeout for its reply.
func (p PingProber) InUse(ctx context.Context, addr netip.Addr) (bool, error) {
	var dst net.Addr = &net.UDPAddr{IP: net.IP(addr.AsSlice())}
	c, err := icmp.ListenPacket("udp4", "0.0.0.0")
	if err != nil {
		dst = &net.IPAddr{IP: net.IP(addr.AsSlice())}
		if c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0"); err != nil {
			return false, fmt.Errorf("ICMP socket: %w", err)
		}
	}
	defer c.Close()
	id, seq := os.Getpid()&0xffff, rand.IntN(0xffff)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("moobi dhcp probe")}}
	b, _ := msg.Marshal(nil)
	if _, err := c.WriteTo(b, dst); err != nil {
		return false, fmt.Errorf("ICMP echo to %s: %w", addr, err)
	}
	deadline := time.Now().Add(p.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, nil
			}
			return false, fmt.Errorf("ICMP read: %w", err)
		}
		if !sameIP(from, addr) {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq {
			return true, nil
		}
	}
}

func sameIP(a net.Addr, want netip.Addr) bool {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	got, ok := netip.AddrFromSlice(ip.To4())
	return ok && got == want
}
