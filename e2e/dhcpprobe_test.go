package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"moobi/lab"
)

// probeReply is what a PXE DISCOVER got back from proxy DHCP.
type probeReply struct {
	Server   string `json:"server"`   // option 54
	Next     string `json:"next"`     // siaddr
	BootFile string `json:"bootfile"` // file
	Class    string `json:"class"`    // option 60
}

// probeHost adds a host to the lab, plugged into the bridge with address
// addr/24, for proxyDHCPProbe and other clients.
func probeHost(t *testing.T, ctx context.Context, l *lab.Lab, name, addr string) string {
	t.Helper()
	ns, err := l.AddHost(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	return ns
}

// proxyDHCPProbe broadcasts a BIOS PXE DISCOVER from mac in namespace ns
// (this test binary, re-run there as TestHelperDHCPProbe) and returns the
// proxy DHCP offer: an offer with no address and option 60 "PXEClient",
// which the site DHCP server's offer is not.
func proxyDHCPProbe(ctx context.Context, ns, mac string) (probeReply, error) {
	out, err := dhcpHelper(ctx, ns, "MOOBI_PROBE_MAC="+mac)
	for _, line := range strings.Split(string(out), "\n") {
		if js, ok := strings.CutPrefix(line, "PROBE-REPLY "); ok {
			var r probeReply
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				return r, fmt.Errorf("probe output %q: %w", js, err)
			}
			return r, nil
		}
	}
	return probeReply{}, fmt.Errorf("no proxy DHCP offer for %s: %v\n%s", mac, err, out)
}

// dhcpDiscoverOnce broadcasts one BIOS PXE DISCOVER from mac in namespace
// ns and returns without waiting for an answer.
func dhcpDiscoverOnce(ctx context.Context, ns, mac string) error {
	out, err := dhcpHelper(ctx, ns, "MOOBI_PROBE_MAC="+mac, "MOOBI_PROBE_ONCE=1")
	if err != nil {
		return fmt.Errorf("DISCOVER from %s: %w\n%s", mac, err, out)
	}
	return nil
}

// dhcpGarbage sends a datagram that is not DHCP to port 67 of addr from
// namespace ns.
func dhcpGarbage(ctx context.Context, ns, addr string) error {
	out, err := dhcpHelper(ctx, ns, "MOOBI_PROBE_GARBAGE="+addr)
	if err != nil {
		return fmt.Errorf("garbage to %s:67: %w\n%s", addr, err, out)
	}
	return nil
}

// dhcpHelper runs TestHelperDHCPProbe in namespace ns with env.
func dhcpHelper(ctx context.Context, ns string, env ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperDHCPProbe$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// TestHelperDHCPProbe is the client of proxyDHCPProbe, dhcpDiscoverOnce and
// dhcpGarbage. It does nothing unless MOOBI_PROBE_MAC or
// MOOBI_PROBE_GARBAGE is set.
func TestHelperDHCPProbe(t *testing.T) {
	if addr := os.Getenv("MOOBI_PROBE_GARBAGE"); addr != "" {
		c, err := net.Dial("udp4", net.JoinHostPort(addr, "67"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("this is not a DHCP packet")); err != nil {
			t.Fatal(err)
		}
		return
	}
	macStr := os.Getenv("MOOBI_PROBE_MAC")
	if macStr == "" {
		t.Skip("helper process of proxyDHCPProbe")
	}
	mac, err := net.ParseMAC(macStr)
	if err != nil {
		t.Fatal(err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Bound to eth0: the limited broadcast needs no route.
			serr = errors.Join(syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1),
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1),
				syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "eth0"))
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	req, err := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := pc.WriteTo(req.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
			t.Fatal(err)
		}
		if os.Getenv("MOOBI_PROBE_ONCE") == "1" {
			return
		}
		pc.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break // no answer within a second: send again
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || r.TransactionID != req.TransactionID || r.OpCode != dhcpv4.OpcodeBootReply ||
				r.MessageType() != dhcpv4.MessageTypeOffer || !r.YourIPAddr.IsUnspecified() {
				continue // not ours, or the site server's offer of an address
			}
			js, _ := json.Marshal(probeReply{Server: r.ServerIdentifier().String(), Next: r.ServerIPAddr.String(),
				BootFile: r.BootFileName, Class: r.ClassIdentifier()})
			fmt.Printf("PROBE-REPLY %s\n", js)
			return
		}
	}
	t.Fatal("no proxy DHCP offer within 20 s")
}
