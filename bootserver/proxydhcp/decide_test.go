package proxydhcp

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var update = flag.Bool("update", false, "rewrite the golden packets in testdata/")

var (
	serverIP = net.IPv4(10, 99, 0, 1).To4()
	knownMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x01}
	otherMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0xee, 0xee, 0xee}
)

func testEnv(withARM64 bool) Env {
	files := map[Firmware]string{FirmwareBIOS: "undionly.kpxe", FirmwareEFIx64: "ipxe.efi"}
	if withARM64 {
		files[FirmwareEFIarm64] = "ipxe-arm64.efi"
	}
	return Env{
		ServerIP:  serverIP,
		Boots:     func(mac net.HardwareAddr) bool { return bytes.Equal(mac, knownMAC) },
		ScriptURL: func(mac net.HardwareAddr) string { return "http://10.99.0.1:8080/boot/" + mac.String() + ".ipxe" },
		BootFiles: files,
		BinaryURL: func(name string) string { return "http://10.99.0.1:8080/ipxe/" + name },
	}
}

// httpBoot is what UEFI HTTP boot firmware sends (UEFI 2.5, 24.7.2).
func httpBoot(arch iana.Arch) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("HTTPClient:Arch:%05d:UNDI:003001", arch))),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, bytes.Repeat([]byte{0x22}, 16)...)),
	}
}

func mustNew(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{dhcpv4.WithTransactionID(dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef})}
	p, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pxe(arch iana.Arch) []dhcpv4.Modifier {
	class := "PXEClient:Arch:0000" + string(rune('0'+arch%10)) + ":UNDI:003016"
	if arch >= 10 {
		class = "PXEClient:Arch:000" + string(rune('0'+arch/10)) + string(rune('0'+arch%10)) + ":UNDI:003016"
	}
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, bytes.Repeat([]byte{0x11}, 16)...)),
	}
}

func discover(mac net.HardwareAddr, mods ...dhcpv4.Modifier) []dhcpv4.Modifier {
	return append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithBroadcast(true)}, mods...)
}

func request(mac net.HardwareAddr, mods ...dhcpv4.Modifier) []dhcpv4.Modifier {
	return append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)}, mods...)
}

func cat(a []dhcpv4.Modifier, b ...dhcpv4.Modifier) []dhcpv4.Modifier {
	return append(append([]dhcpv4.Modifier{}, a...), b...)
}

type decideCase struct {
	name     string
	port     int
	arm64    bool
	mods     []dhcpv4.Modifier
	wantFile string // "" means no reply
	wantType dhcpv4.MessageType
	wantCode string
	// wantClass is option 60 of the reply; "" means PXEClient.
	wantClass string
}

func decideCases() []decideCase {
	ipxeUC := dhcpv4.WithUserClass("iPXE", false)
	return []decideCase{
		{name: "bios-discover", port: 67, mods: discover(knownMAC, pxe(iana.INTEL_X86PC)...), wantFile: "undionly.kpxe", wantType: dhcpv4.MessageTypeOffer},
		{name: "uefi-x64-discover", port: 67, mods: discover(knownMAC, pxe(iana.EFI_X86_64)...), wantFile: "ipxe.efi", wantType: dhcpv4.MessageTypeOffer},
		{name: "uefi-bc-discover", port: 67, mods: discover(knownMAC, pxe(iana.EFI_BC)...), wantFile: "ipxe.efi", wantType: dhcpv4.MessageTypeOffer},
		{name: "uefi-x64-request-4011", port: 4011, mods: request(knownMAC, cat(pxe(iana.EFI_X86_64), dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 150)))...), wantFile: "ipxe.efi", wantType: dhcpv4.MessageTypeAck},
		{name: "uefi-arm64-discover", port: 67, arm64: true, mods: discover(knownMAC, pxe(iana.EFI_ARM64)...), wantFile: "ipxe-arm64.efi", wantType: dhcpv4.MessageTypeOffer},
		{name: "uefi-arm64-no-binary", port: 67, mods: discover(knownMAC, pxe(iana.EFI_ARM64)...), wantCode: "no-binary"},
		{name: "ipxe-user-class", port: 67, mods: discover(knownMAC, cat(pxe(iana.INTEL_X86PC), ipxeUC)...), wantFile: "http://10.99.0.1:8080/boot/52:54:00:12:34:01.ipxe", wantType: dhcpv4.MessageTypeOffer},
		{name: "ipxe-option-175", port: 67, mods: discover(knownMAC, cat(pxe(iana.EFI_X86_64), dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{19, 1, 1}))...), wantFile: "http://10.99.0.1:8080/boot/52:54:00:12:34:01.ipxe", wantType: dhcpv4.MessageTypeOffer},
		{name: "ipxe-request-ours", port: 67, mods: request(knownMAC, cat(pxe(iana.EFI_X86_64), ipxeUC, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)))...), wantFile: "http://10.99.0.1:8080/boot/52:54:00:12:34:01.ipxe", wantType: dhcpv4.MessageTypeAck},
		{name: "non-pxe", port: 67, mods: discover(knownMAC), wantCode: "not-pxe"},
		{name: "non-pxe-vendor", port: 67, mods: discover(knownMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("MSFT 5.0"))), wantCode: "not-pxe"},
		{name: "unknown-mac", port: 67, mods: discover(otherMAC, pxe(iana.INTEL_X86PC)...), wantCode: "unknown-mac"},
		{name: "foreign-request", port: 67, mods: request(knownMAC, cat(pxe(iana.INTEL_X86PC), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 2))))...), wantCode: "foreign-request"},
		{name: "request-no-server-id", port: 67, mods: request(knownMAC, pxe(iana.INTEL_X86PC)...), wantCode: "foreign-request"},
		{name: "discover-on-4011", port: 4011, mods: discover(knownMAC, pxe(iana.EFI_X86_64)...), wantCode: "message-type"},
		{name: "efi-http-arch", port: 67, mods: discover(knownMAC, pxe(iana.EFI_X86_64_HTTP)...), wantCode: "unsupported-arch"},
		{name: "http-x64-discover", port: 67, mods: discover(knownMAC, httpBoot(iana.EFI_X86_64_HTTP)...), wantFile: "http://10.99.0.1:8080/ipxe/ipxe.efi", wantType: dhcpv4.MessageTypeOffer, wantClass: "HTTPClient"},
		{name: "http-arm64-discover", port: 67, arm64: true, mods: discover(knownMAC, httpBoot(iana.EFI_ARM64_HTTP)...), wantFile: "http://10.99.0.1:8080/ipxe/ipxe-arm64.efi", wantType: dhcpv4.MessageTypeOffer, wantClass: "HTTPClient"},
		{name: "http-x64-on-4011", port: 4011, mods: request(knownMAC, httpBoot(iana.EFI_X86_64_HTTP)...), wantCode: "message-type"},
		{name: "http-arm64-no-binary", port: 67, mods: discover(knownMAC, httpBoot(iana.EFI_ARM64_HTTP)...), wantCode: "no-binary"},
		{name: "reply-packet", port: 67, mods: cat(discover(knownMAC, pxe(iana.INTEL_X86PC)...), dhcpv4.WithReply(mustNewNoT(discover(knownMAC)...))), wantCode: "not-request"},
	}
}

func mustNewNoT(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	p, err := dhcpv4.New(mods...)
	if err != nil {
		panic(err)
	}
	return p
}

// TestDecideGolden runs each request in testdata/ through Decide and
// compares the reply with the golden reply, byte for byte. Run with -update
// to rewrite both after a deliberate change.
func TestDecideGolden(t *testing.T) {
	for _, tc := range decideCases() {
		t.Run(tc.name, func(t *testing.T) {
			reqPath := filepath.Join("testdata", tc.name+".request.bin")
			replyPath := filepath.Join("testdata", tc.name+".reply.bin")
			if *update {
				writeFile(t, reqPath, mustNew(t, tc.mods...).ToBytes())
			}
			raw, err := os.ReadFile(reqPath)
			if err != nil {
				t.Fatalf("golden request: %v (run go test -update)", err)
			}
			req, err := dhcpv4.FromBytes(raw)
			if err != nil {
				t.Fatalf("parse golden request: %v", err)
			}
			d, err := Decide(req, tc.port, testEnv(tc.arm64))
			if tc.wantFile == "" {
				ig, ok := IsIgnore(err)
				if !ok {
					t.Fatalf("Decide = reply %v, err %v; want ignore %q", d.Reply, err, tc.wantCode)
				}
				if ig.Code != tc.wantCode {
					t.Fatalf("ignore code %q (%s), want %q", ig.Code, ig.Detail, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			checkReply(t, req, d.Reply, tc)
			got := d.Reply.ToBytes()
			if *update {
				writeFile(t, replyPath, got)
				writeFile(t, filepath.Join("testdata", tc.name+".reply.txt"), []byte(d.Reply.Summary()))
			}
			want, err := os.ReadFile(replyPath)
			if err != nil {
				t.Fatalf("golden reply: %v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				wantPkt, _ := dhcpv4.FromBytes(want)
				t.Fatalf("reply differs from %s:\n%s", replyPath, cmp.Diff(wantPkt.Summary(), d.Reply.Summary()))
			}
		})
	}
}

// checkReply asserts the proxy DHCP rules independently of the golden bytes.
func checkReply(t *testing.T, req, r *dhcpv4.DHCPv4, tc decideCase) {
	t.Helper()
	if r.MessageType() != tc.wantType {
		t.Errorf("message type %s, want %s", r.MessageType(), tc.wantType)
	}
	if !r.YourIPAddr.IsUnspecified() {
		t.Errorf("yiaddr %v: a proxy must never offer an address", r.YourIPAddr)
	}
	if !r.ServerIPAddr.Equal(serverIP) || !r.ServerIdentifier().Equal(serverIP) {
		t.Errorf("siaddr %v, option 54 %v; want %v", r.ServerIPAddr, r.ServerIdentifier(), serverIP)
	}
	wantClass := tc.wantClass
	if wantClass == "" {
		wantClass = "PXEClient"
	}
	if r.ClassIdentifier() != wantClass {
		t.Errorf("option 60 %q, want %s", r.ClassIdentifier(), wantClass)
	}
	if has := r.Options.Has(dhcpv4.OptionVendorSpecificInformation); has != (wantClass == "PXEClient") {
		t.Errorf("option 43 present: %v; PXE vendor options go to PXE clients only", has)
	}
	if got, want := r.GetOneOption(dhcpv4.OptionClientMachineIdentifier), req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(got, want) {
		t.Errorf("option 97 %x, want it copied: %x", got, want)
	}
	if r.BootFileName != tc.wantFile {
		t.Errorf("boot file %q, want %q", r.BootFileName, tc.wantFile)
	}
	if r.TransactionID != req.TransactionID || !bytes.Equal(r.ClientHWAddr, req.ClientHWAddr) {
		t.Errorf("xid/chaddr not copied")
	}
	for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionRouter, dhcpv4.OptionSubnetMask, dhcpv4.OptionIPAddressLeaseTime} {
		if r.Options.Has(o) {
			t.Errorf("reply carries %v: address configuration is the site DHCP server's job", o)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDestination(t *testing.T) {
	client := &net.UDPAddr{IP: net.IPv4(10, 99, 0, 150), Port: 4011}
	tests := []struct {
		name string
		req  *dhcpv4.DHCPv4
		peer *net.UDPAddr
		want *net.UDPAddr
	}{
		{"broadcast discover", mustNew(t, discover(knownMAC)...), &net.UDPAddr{IP: net.IPv4zero, Port: 68}, &net.UDPAddr{IP: net.IPv4bcast, Port: 68}},
		{"unicast 4011 request", mustNew(t, request(knownMAC, dhcpv4.WithClientIP(client.IP))...), client, client},
		{"relayed", mustNew(t, discover(knownMAC, dhcpv4.WithGatewayIP(net.IPv4(10, 1, 0, 1)))...), &net.UDPAddr{IP: net.IPv4(10, 1, 0, 1), Port: 67}, &net.UDPAddr{IP: net.IPv4(10, 1, 0, 1), Port: 67}},
		{"ciaddr without peer", mustNew(t, request(knownMAC, dhcpv4.WithClientIP(client.IP))...), nil, &net.UDPAddr{IP: client.IP, Port: 68}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Destination(tc.req, tc.peer)
			if !got.IP.Equal(tc.want.IP) || got.Port != tc.want.Port {
				t.Fatalf("Destination = %v, want %v", got, tc.want)
			}
		})
	}
}
