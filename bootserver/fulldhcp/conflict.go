package fulldhcp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// ErrOtherServer is returned by CheckAlone when another DHCP server
// answers on the interface.
var ErrOtherServer = errors.New("another DHCP server answers on the boot VLAN")

// CheckAlone broadcasts a DHCPDISCOVER on ifname from a made-up,
// locally administered MAC and waits for an OFFER. An OFFER from any
// server but self means two servers would hand out addresses on one
// VLAN: full mode must not start (proxy mode is made for that case). It
// needs UDP port 68 on the interface.
func CheckAlone(ctx context.Context, ifname string, self net.IP, wait time.Duration) error {
	conn, err := server4.NewIPv4UDPConn(ifname, &net.UDPAddr{Port: dhcpv4.ClientPort})
	if err != nil {
		return fmt.Errorf("DHCP server check: listen on %s port 68: %w", ifname, err)
	}
	defer conn.Close()
	mac := make(net.HardwareAddr, 6)
	rand.Read(mac)
	mac[0] = mac[0]&^1 | 2 // unicast, locally administered
	disc, err := dhcpv4.NewDiscovery(mac, dhcpv4.WithBroadcast(true))
	if err != nil {
		return err
	}
	if _, err := conn.WriteTo(disc.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}); err != nil {
		return fmt.Errorf("DHCP server check: send DISCOVER on %s: %w", ifname, err)
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return fmt.Errorf("DHCP server check: %w", err)
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != disc.TransactionID || m.MessageType() != dhcpv4.MessageTypeOffer {
			continue
		}
		sid := m.ServerIdentifier()
		if sid != nil && sid.Equal(self) {
			continue
		}
		return fmt.Errorf("%w: %v offered %v to a test DISCOVER on %s; full DHCP mode must be alone on its VLAN: set appliance.dhcp to proxy to boot beside that server",
			ErrOtherServer, sid, m.YourIPAddr, ifname)
	}
}
