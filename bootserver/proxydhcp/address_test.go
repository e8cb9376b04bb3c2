package proxydhcp

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestRequestedAddress(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 1}
	msg := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name string
		req  *dhcpv4.DHCPv4
		want string
	}{
		{"selecting", msg(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 99, 0, 101)))), "10.99.0.101"},
		{"renewing", msg(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 102))), "10.99.0.102"},
		{"discover", msg(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 99, 0, 103)))), ""},
		{"request without address", msg(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)), ""},
		{"broadcast address", msg(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4bcast))), ""},
		{"reply", msg(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithReply(msg()), dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 104))), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok := RequestedAddress(tt.req)
			got := ""
			if ok {
				got = a.String()
			}
			if got != tt.want {
				t.Errorf("RequestedAddress = %q, want %q", got, tt.want)
			}
		})
	}
}
