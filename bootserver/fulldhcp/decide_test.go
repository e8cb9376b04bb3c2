package fulldhcp

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"moobi/bootserver/proxydhcp"
)

var update = flag.Bool("update", false, "rewrite the golden packets in testdata/")

var (
	serverIP  = net.IPv4(10, 99, 0, 1).To4()
	staticMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x01} // ip 10.99.0.11
	poolMAC   = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x02} // known, from the pool
	otherMAC  = net.HardwareAddr{0x52, 0x54, 0x00, 0xee, 0xee, 0xee} // not in the inventory
	t0        = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	a         = netip.MustParseAddr
)

func testEnv() Env {
	return Env{
		ServerIP:   serverIP,
		Subnet:     netip.MustParsePrefix("10.99.0.0/24"),
		RangeStart: a("10.99.0.100"), RangeEnd: a("10.99.0.102"),
		Router: a("10.99.0.254"), DNS: []netip.Addr{a("10.99.0.1")}, Domain: "lab.example",
		LeaseTime: time.Hour, OfferTime: time.Minute, BadTime: 10 * time.Minute,
		Host: func(mac net.HardwareAddr) Host {
			switch mac.String() {
			case staticMAC.String():
				return Host{Name: "node01", IP: a("10.99.0.11"), Boots: true}
			case poolMAC.String():
				return Host{Name: "node02", Boots: true}
			}
			return Host{}
		},
		Reserved: func(addr netip.Addr) bool { return addr == a("10.99.0.11") },
		Boot: proxydhcp.Env{
			ServerIP:  serverIP,
			ScriptURL: func(mac net.HardwareAddr) string { return "http://10.99.0.1:8080/boot/" + mac.String() + ".ipxe" },
			BootFiles: map[proxydhcp.Firmware]string{proxydhcp.FirmwareBIOS: "undionly.kpxe", proxydhcp.FirmwareEFIx64: "ipxe.efi"},
			BinaryURL: func(name string) string { return "http://10.99.0.1:8080/ipxe/" + name },
		},
	}
}

func msg(t testing.TB, mac net.HardwareAddr, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{dhcpv4.WithTransactionID(dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}), dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(mt)}
	p, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func class(c string, arch iana.Arch) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("%s:Arch:%05d:UNDI:003016", c, arch))), dhcpv4.WithOption(dhcpv4.OptClientArch(arch))}
}

func cat(a []dhcpv4.Modifier, b ...dhcpv4.Modifier) []dhcpv4.Modifier {
	return append(append([]dhcpv4.Modifier{}, a...), b...)
}

var (
	sidOurs  = dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP))
	sidOther = dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 2)))
	reqIP    = func(s string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(s))) }
	ciaddr   = func(s string) dhcpv4.Modifier { return dhcpv4.WithClientIP(net.ParseIP(s)) }
)

// leased is a table where poolMAC holds 10.99.0.100 and otherMAC
// 10.99.0.101, both until t0 + 30 min.
func leased() *Table {
	return NewTable([]Lease{
		{MAC: poolMAC.String(), Addr: a("10.99.0.100"), Expires: t0.Add(30 * time.Minute)},
		{MAC: otherMAC.String(), Addr: a("10.99.0.101"), Expires: t0.Add(30 * time.Minute)},
	})
}

type decideCase struct {
	name  string
	table func() *Table
	req   func(t testing.TB) *dhcpv4.DHCPv4
	// want: reply type ("" none), yiaddr, boot file, change kind, probe; or an ignore code.
	wantType   dhcpv4.MessageType
	wantAddr   string
	wantFile   string
	wantClass  string
	wantChange ChangeKind
	wantProbe  bool
	wantCode   string
	golden     bool
}

func decideCases() []decideCase {
	empty := func() *Table { return NewTable(nil) }
	return []decideCase{
		{name: "static-bios-discover", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, staticMAC, dhcpv4.MessageTypeDiscover, class("PXEClient", iana.INTEL_X86PC)...)
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.11", wantFile: "undionly.kpxe", wantChange: ChangeOffer, golden: true},
		{name: "pool-uefi-discover", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeDiscover, class("PXEClient", iana.EFI_X86_64)...)
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.100", wantFile: "ipxe.efi", wantChange: ChangeOffer, wantProbe: true, golden: true},
		{name: "http-x64-discover", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeDiscover, class("HTTPClient", iana.EFI_X86_64_HTTP)...)
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.100", wantFile: "http://10.99.0.1:8080/ipxe/ipxe.efi", wantClass: "HTTPClient", wantChange: ChangeOffer, wantProbe: true, golden: true},
		{name: "http-x64-request", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, cat(class("HTTPClient", iana.EFI_X86_64_HTTP), sidOurs, reqIP("10.99.0.100"))...)
		}, wantType: dhcpv4.MessageTypeAck, wantAddr: "10.99.0.100", wantFile: "http://10.99.0.1:8080/ipxe/ipxe.efi", wantClass: "HTTPClient", wantChange: ChangeBind, golden: true},
		{name: "ipxe-static-request", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, staticMAC, dhcpv4.MessageTypeRequest, cat(class("PXEClient", iana.INTEL_X86PC), dhcpv4.WithUserClass("iPXE", false), reqIP("10.99.0.11"))...)
		}, wantType: dhcpv4.MessageTypeAck, wantAddr: "10.99.0.11", wantFile: "http://10.99.0.1:8080/boot/52:54:00:12:34:01.ipxe", wantChange: ChangeBind, golden: true},
		{name: "unknown-pxe-discover", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, otherMAC, dhcpv4.MessageTypeDiscover, class("PXEClient", iana.INTEL_X86PC)...)
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.100", wantChange: ChangeOffer, wantProbe: true, golden: true},
		{name: "plain-client-discover", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeDiscover)
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.100", wantChange: ChangeOffer, wantProbe: true},
		{name: "discover-keeps-lease", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, otherMAC, dhcpv4.MessageTypeDiscover)
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.101", wantChange: ChangeOffer},
		{name: "discover-requested-free", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, otherMAC, dhcpv4.MessageTypeDiscover, reqIP("10.99.0.102"))
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.102", wantChange: ChangeOffer, wantProbe: true},
		{name: "discover-requested-taken", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, net.HardwareAddr{2, 0, 0, 0, 0, 9}, dhcpv4.MessageTypeDiscover, reqIP("10.99.0.100"))
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.102", wantChange: ChangeOffer, wantProbe: true},
		{name: "pool-exhausted", table: func() *Table {
			t := leased()
			t.Apply(Change{Kind: ChangeBind, MAC: "02:00:00:00:00:01", Addr: a("10.99.0.102"), Until: t0.Add(time.Hour)})
			return t
		}, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, net.HardwareAddr{2, 0, 0, 0, 0, 9}, dhcpv4.MessageTypeDiscover)
		}, wantCode: "pool-exhausted"},
		{name: "expired-lease-reused-last", table: func() *Table {
			return NewTable([]Lease{{MAC: "02:00:00:00:00:01", Addr: a("10.99.0.100"), Expires: t0.Add(-time.Minute)}, {MAC: "02:00:00:00:00:02", Addr: a("10.99.0.101"), Expires: t0.Add(time.Hour)}})
		}, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, net.HardwareAddr{2, 0, 0, 0, 0, 9}, dhcpv4.MessageTypeDiscover)
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.102", wantChange: ChangeOffer, wantProbe: true},
		{name: "declined-skipped", table: func() *Table {
			t := NewTable(nil)
			t.Apply(Change{Kind: ChangeBad, Addr: a("10.99.0.100"), Until: t0.Add(time.Minute)})
			return t
		}, req: func(t testing.TB) *dhcpv4.DHCPv4 { return msg(t, poolMAC, dhcpv4.MessageTypeDiscover) },
			wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.101", wantChange: ChangeOffer, wantProbe: true},
		{name: "selecting-ours", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, sidOurs, reqIP("10.99.0.100"))
		}, wantType: dhcpv4.MessageTypeAck, wantAddr: "10.99.0.100", wantChange: ChangeBind},
		{name: "selecting-wrong-address", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, sidOurs, reqIP("10.99.0.102"))
		}, wantType: dhcpv4.MessageTypeNak, golden: true},
		{name: "selecting-other-server", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, sidOther, reqIP("10.99.0.100"))
		}, wantCode: "foreign-server"},
		{name: "init-reboot-own", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, reqIP("10.99.0.100"))
		}, wantType: dhcpv4.MessageTypeAck, wantAddr: "10.99.0.100", wantChange: ChangeBind},
		{name: "init-reboot-others", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, reqIP("10.99.0.101"))
		}, wantType: dhcpv4.MessageTypeNak},
		{name: "init-reboot-wrong-subnet", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, reqIP("192.168.1.5"))
		}, wantType: dhcpv4.MessageTypeNak},
		{name: "init-reboot-static-wrong", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, staticMAC, dhcpv4.MessageTypeRequest, reqIP("10.99.0.100"))
		}, wantType: dhcpv4.MessageTypeNak},
		{name: "init-reboot-no-record-free", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, otherMAC, dhcpv4.MessageTypeRequest, reqIP("10.99.0.102"))
		}, wantType: dhcpv4.MessageTypeAck, wantAddr: "10.99.0.102", wantChange: ChangeBind},
		{name: "init-reboot-reserved", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, otherMAC, dhcpv4.MessageTypeRequest, reqIP("10.99.0.11"))
		}, wantType: dhcpv4.MessageTypeNak},
		{name: "init-reboot-outside-pool", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, otherMAC, dhcpv4.MessageTypeRequest, reqIP("10.99.0.50"))
		}, wantType: dhcpv4.MessageTypeNak},
		{name: "renewing", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, ciaddr("10.99.0.100"))
		}, wantType: dhcpv4.MessageTypeAck, wantAddr: "10.99.0.100", wantChange: ChangeBind, golden: true},
		{name: "rebinding-others", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest, ciaddr("10.99.0.101"), dhcpv4.WithBroadcast(true))
		}, wantType: dhcpv4.MessageTypeNak},
		{name: "request-nothing", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRequest)
		}, wantCode: "bad-request"},
		{name: "decline", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeDecline, sidOurs, reqIP("10.99.0.100"))
		}, wantChange: ChangeBad},
		{name: "decline-not-ours", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeDecline, sidOurs, reqIP("10.99.0.101"))
		}, wantCode: "not-leased"},
		{name: "release", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRelease, sidOurs, ciaddr("10.99.0.100"))
		}, wantChange: ChangeFree},
		{name: "release-not-ours", table: leased, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeRelease, sidOurs, ciaddr("10.99.0.101"))
		}, wantCode: "not-leased"},
		{name: "inform", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, otherMAC, dhcpv4.MessageTypeInform, ciaddr("10.99.0.50"))
		}, wantType: dhcpv4.MessageTypeAck, wantAddr: "0.0.0.0", golden: true},
		{name: "relayed-in-subnet", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.IPv4(10, 99, 0, 254)))
		}, wantType: dhcpv4.MessageTypeOffer, wantAddr: "10.99.0.100", wantChange: ChangeOffer, wantProbe: true},
		{name: "relayed-other-subnet", table: empty, req: func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, poolMAC, dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.IPv4(10, 1, 0, 1)))
		}, wantCode: "no-subnet"},
	}
}

// TestDecide runs each request through Decide, checks the decision, and
// for the golden cases compares the reply with testdata/, byte for byte
// (go test -update rewrites them).
func TestDecide(t *testing.T) {
	for _, tc := range decideCases() {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req(t)
			if tc.golden {
				reqPath := filepath.Join("testdata", tc.name+".request.bin")
				if *update {
					os.WriteFile(reqPath, req.ToBytes(), 0o644)
				}
				raw, err := os.ReadFile(reqPath)
				if err != nil {
					t.Fatalf("golden request: %v (run go test -update)", err)
				}
				if req, err = dhcpv4.FromBytes(raw); err != nil {
					t.Fatal(err)
				}
			}
			d, err := Decide(req, testEnv(), tc.table(), t0)
			if tc.wantCode != "" {
				ig, ok := proxydhcp.IsIgnore(err)
				if !ok || ig.Code != tc.wantCode {
					t.Fatalf("Decide = %+v, %v; want ignore %q", d, err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Change.Kind != tc.wantChange || d.Probe != tc.wantProbe {
				t.Errorf("change %v probe %v, want %v %v", d.Change.Kind, d.Probe, tc.wantChange, tc.wantProbe)
			}
			if tc.wantType == 0 {
				if d.Reply != nil {
					t.Fatalf("reply %v, want none", d.Reply.Summary())
				}
				return
			}
			r := d.Reply
			checkReply(t, req, r, tc)
			if !tc.golden {
				return
			}
			replyPath := filepath.Join("testdata", tc.name+".reply.bin")
			if *update {
				os.WriteFile(replyPath, r.ToBytes(), 0o644)
				os.WriteFile(filepath.Join("testdata", tc.name+".reply.txt"), []byte(r.Summary()), 0o644)
			}
			want, err := os.ReadFile(replyPath)
			if err != nil {
				t.Fatalf("golden reply: %v (run go test -update)", err)
			}
			if !bytes.Equal(r.ToBytes(), want) {
				wp, _ := dhcpv4.FromBytes(want)
				t.Fatalf("reply differs from %s:\n%s", replyPath, cmp.Diff(wp.Summary(), r.Summary()))
			}
		})
	}
}

func checkReply(t *testing.T, req, r *dhcpv4.DHCPv4, tc decideCase) {
	t.Helper()
	if r.MessageType() != tc.wantType {
		t.Fatalf("reply %s, want %s: %s", r.MessageType(), tc.wantType, r.Summary())
	}
	if r.TransactionID != req.TransactionID || !bytes.Equal(r.ClientHWAddr, req.ClientHWAddr) || r.OpCode != dhcpv4.OpcodeBootReply {
		t.Error("xid, chaddr or opcode wrong")
	}
	if !r.ServerIdentifier().Equal(serverIP) {
		t.Errorf("server id %v", r.ServerIdentifier())
	}
	if tc.wantType == dhcpv4.MessageTypeNak {
		if !r.YourIPAddr.IsUnspecified() || r.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || r.BootFileName != "" {
			t.Errorf("NAK with an address, lease time or boot file: %s", r.Summary())
		}
		return
	}
	if r.YourIPAddr.String() != tc.wantAddr {
		t.Errorf("yiaddr %v, want %s", r.YourIPAddr, tc.wantAddr)
	}
	if r.BootFileName != tc.wantFile {
		t.Errorf("boot file %q, want %q", r.BootFileName, tc.wantFile)
	}
	if got := r.ClassIdentifier(); got != tc.wantClass {
		t.Errorf("option 60 %q, want %q", got, tc.wantClass)
	}
	if !net.IP(r.SubnetMask()).Equal(net.IP(net.CIDRMask(24, 32))) || len(r.Router()) != 1 || len(r.DNS()) != 1 || r.DomainName() != "lab.example" {
		t.Errorf("site options missing: %s", r.Summary())
	}
	if got, isIPXE := r.GetOneOption(optIPXE), strings.HasPrefix(tc.wantFile, "http://10.99.0.1:8080/boot/"); isIPXE != bytes.Equal(got, []byte{176, 1, 1}) {
		t.Errorf("option 175 %x: iPXE (and only iPXE) is told not to wait for proxy DHCP", got)
	}
	isInform := req.MessageType() == dhcpv4.MessageTypeInform
	if lt := r.IPAddressLeaseTime(0); isInform != (lt == 0) {
		t.Errorf("lease time %v (INFORM gets none, the rest one)", lt)
	}
}

func TestDestination(t *testing.T) {
	ack := msg(t, poolMAC, dhcpv4.MessageTypeAck)
	nakm := msg(t, poolMAC, dhcpv4.MessageTypeNak)
	tests := []struct {
		name       string
		req, reply *dhcpv4.DHCPv4
		want       string
	}{
		{"relayed", msg(t, poolMAC, dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.IPv4(10, 99, 0, 254))), ack, "10.99.0.254:67"},
		{"renewing", msg(t, poolMAC, dhcpv4.MessageTypeRequest, ciaddr("10.99.0.100")), ack, "10.99.0.100:68"},
		{"nak to renewing", msg(t, poolMAC, dhcpv4.MessageTypeRequest, ciaddr("10.99.0.100")), nakm, "255.255.255.255:68"},
		{"discover", msg(t, poolMAC, dhcpv4.MessageTypeDiscover), ack, "255.255.255.255:68"},
	}
	for _, tc := range tests {
		if got := Destination(tc.req, tc.reply).String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestExchanges runs whole client conversations through Decide and
// Apply, as the server does.
func TestExchanges(t *testing.T) {
	env, tab := testEnv(), NewTable(nil)
	step := func(req *dhcpv4.DHCPv4, at time.Time) Decision {
		t.Helper()
		d, err := Decide(req, env, tab, at)
		if err != nil {
			t.Fatalf("%s: %v", req.MessageType(), err)
		}
		tab.Apply(d.Change)
		return d
	}
	c1, c2 := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	// DORA for c1, then c2 gets another address while c1's offer stands.
	o1 := step(msg(t, c1, dhcpv4.MessageTypeDiscover), t0)
	o2 := step(msg(t, c2, dhcpv4.MessageTypeDiscover), t0)
	if o1.Reply.YourIPAddr.Equal(o2.Reply.YourIPAddr) {
		t.Fatalf("two clients offered %v", o1.Reply.YourIPAddr)
	}
	ack := step(msg(t, c1, dhcpv4.MessageTypeRequest, sidOurs, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o1.Reply.YourIPAddr))), t0)
	if ack.Reply.MessageType() != dhcpv4.MessageTypeAck || len(tab.Leases()) != 1 {
		t.Fatalf("ACK %s, leases %v", ack.Reply.MessageType(), tab.Leases())
	}
	// c2's offer lapses; c1 comes back after its lease ran out and
	// nobody took its address: it gets it again.
	later := t0.Add(2 * time.Hour)
	again := step(msg(t, c1, dhcpv4.MessageTypeDiscover), later)
	if !again.Reply.YourIPAddr.Equal(o1.Reply.YourIPAddr) {
		t.Errorf("c1 came back to %v, had %v", again.Reply.YourIPAddr, o1.Reply.YourIPAddr)
	}
	// c1 declines it: the next DISCOVER gets another address, and the
	// declined one stays out until BadTime has passed.
	step(msg(t, c1, dhcpv4.MessageTypeRequest, sidOurs, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(again.Reply.YourIPAddr))), later)
	step(msg(t, c1, dhcpv4.MessageTypeDecline, sidOurs, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(again.Reply.YourIPAddr))), later)
	if len(tab.Leases()) != 0 {
		t.Errorf("declined lease kept: %v", tab.Leases())
	}
	next := step(msg(t, c1, dhcpv4.MessageTypeDiscover), later)
	if next.Reply.YourIPAddr.Equal(again.Reply.YourIPAddr) {
		t.Errorf("declined address %v offered again at once", next.Reply.YourIPAddr)
	}
	// Release frees the lease.
	step(msg(t, c1, dhcpv4.MessageTypeRequest, sidOurs, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(next.Reply.YourIPAddr))), later)
	step(msg(t, c1, dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(next.Reply.YourIPAddr)), later)
	if len(tab.Leases()) != 0 {
		t.Errorf("released lease kept: %v", tab.Leases())
	}
}
