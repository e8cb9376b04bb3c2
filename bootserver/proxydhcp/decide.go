// Package proxydhcp is a PXE proxy DHCP server (PXE 2.1, section 2.2.5): it
// runs beside the site's DHCP server, which hands out addresses, and answers
// PXE firmware and iPXE with boot information only. It never offers an
// address: yiaddr is always 0.
//
// Decide is the whole policy, a pure function from a request to a reply or
// to the reason for staying silent; Server is the socket loop around it.
package proxydhcp

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Ports a proxy DHCP server listens on: DHCP's own, where it answers
// broadcast DISCOVERs, and the PXE boot server port, where UEFI firmware
// sends its REQUEST after accepting a proxy offer.
const (
	PortDHCP = 67
	PortPXE  = 4011
)

// Firmware is the kind of client asking, from options 93 and 77/175.
type Firmware string

// Firmware kinds the proxy tells apart.
const (
	FirmwareBIOS     Firmware = "bios"
	FirmwareEFIx64   Firmware = "efi-x64"
	FirmwareEFIarm64 Firmware = "efi-arm64"
	FirmwareIPXE     Firmware = "ipxe"
)

// Env is what Decide needs to know of the appliance: built by the server
// from the inventory in force when a packet arrives.
type Env struct {
	// ServerIP goes in siaddr and option 54 (server identifier).
	ServerIP net.IP
	// Boots reports whether the inventory boots this MAC.
	Boots func(mac net.HardwareAddr) bool
	// ScriptURL is the iPXE script URL for a MAC, handed to clients already running iPXE.
	ScriptURL func(mac net.HardwareAddr) string
	// BootFiles maps firmware to the TFTP name of the iPXE binary for it.
	// A firmware missing here gets no answer.
	BootFiles map[Firmware]string
	// BinaryURL, if set, is the HTTP URL of an iPXE binary named in
	// BootFiles, handed to UEFI HTTP boot clients; nil answers none.
	BinaryURL func(name string) string
	// SecureBoot, if set, reports whether a MAC boots through the signed
	// Secure Boot chain: its UEFI x64 PXE firmware gets ShimFile, not iPXE.
	SecureBoot func(mac net.HardwareAddr) bool
	// ShimFile is the TFTP name of the signed shim ("": not served, and
	// Secure Boot hosts get no answer).
	ShimFile string
}

// Ignore is the reason a request gets no reply. Code is short and stable
// (it labels a metric); Detail is for the log.
type Ignore struct {
	Code   string
	Detail string
}

func (e *Ignore) Error() string { return e.Code + ": " + e.Detail }

func ignore(code, format string, args ...any) *Ignore {
	return &Ignore{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// IsIgnore reports whether err is an *Ignore, and returns it.
func IsIgnore(err error) (*Ignore, bool) {
	var ig *Ignore
	ok := errors.As(err, &ig)
	return ig, ok
}

// Decision is what Decide chose for one request.
type Decision struct {
	Reply    *dhcpv4.DHCPv4
	Firmware Firmware
	BootFile string
}

// bootOptions is option 43 (PXE vendor options) with sub-option 6, PXE
// discovery control, set to 8: "if a boot file name is present in the
// initial DHCP or proxyDHCP offer, download it without discovery". BIOS PXE
// ROMs honour it; UEFI firmware ignores it and asks port 4011 instead, which
// we also answer. ToBytes does not append the End byte, so it is spelled out.
var bootOptions = []byte{6, 1, 8, 255}

// Decide answers one request that arrived on port (PortDHCP or PortPXE).
// It returns the reply to send, or an *Ignore saying why there is none.
func Decide(req *dhcpv4.DHCPv4, port int, env Env) (Decision, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return Decision{}, ignore("not-request", "opcode %s", req.OpCode)
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return Decision{}, ignore("not-ethernet", "hardware type %v, address length %d", req.HWType, len(req.ClientHWAddr))
	}
	mac := req.ClientHWAddr
	if !IsBootClient(req) {
		return Decision{}, ignore("not-pxe", "vendor class %q is neither PXEClient nor HTTPClient", req.ClassIdentifier())
	}
	var replyType dhcpv4.MessageType
	switch mt := req.MessageType(); {
	case port == PortDHCP && mt == dhcpv4.MessageTypeDiscover:
		replyType = dhcpv4.MessageTypeOffer
	case port == PortDHCP && mt == dhcpv4.MessageTypeRequest:
		// A REQUEST on 67 is for whichever server the client chose; only
		// one naming us is ours (the rest belong to the site DHCP server).
		if sid := req.ServerIdentifier(); sid == nil || !sid.Equal(env.ServerIP) {
			return Decision{}, ignore("foreign-request", "REQUEST names server %v, not us", sid)
		}
		replyType = dhcpv4.MessageTypeAck
	case port == PortPXE && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
		replyType = dhcpv4.MessageTypeAck
	default:
		return Decision{}, ignore("message-type", "%s on port %d", mt, port)
	}
	if !env.Boots(mac) {
		return Decision{}, ignore("unknown-mac", "the inventory does not boot %s", mac)
	}
	boot, err := BootFile(req, env)
	if err != nil {
		return Decision{}, err
	}
	if boot.Class == ClassHTTP && port != PortDHCP {
		// UEFI HTTP boot has no boot server discovery (port 4011).
		return Decision{}, ignore("message-type", "HTTP boot client on port %d", port)
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(replyType),
		dhcpv4.WithYourIP(net.IPv4zero),
		dhcpv4.WithClientIP(req.ClientIPAddr),
		dhcpv4.WithServerIP(env.ServerIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(env.ServerIP)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(boot.Class)),
	}
	if boot.Class == ClassPXE {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, bootOptions))
	}
	mods = append(mods, dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientMachineIdentifier))
	reply := newReply(req, mods...)
	reply.BootFileName = boot.File
	return Decision{Reply: reply, Firmware: boot.Firmware, BootFile: boot.File}, nil
}

// newReply is dhcpv4.NewReplyFromRequest without its first step: that
// draws a random transaction id from crypto/rand, which the reply then
// replaces with the request's (RFC 2131, section 4.3.1: the reply carries
// the request's xid). It starts from the same defaults as dhcpv4.New and
// applies the same modifiers, then mods.
func newReply(req *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		ClientHWAddr:  make(net.HardwareAddr, 6),
		TransactionID: req.TransactionID,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       make(dhcpv4.Options, 8),
	}
	for _, m := range []dhcpv4.Modifier{
		dhcpv4.WithReply(req),
		dhcpv4.WithGatewayIP(req.GatewayIPAddr),
		dhcpv4.WithOptionCopied(req, dhcpv4.OptionRelayAgentInformation),
		// RFC 6842: the client identifier is copied from the request.
		dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientIdentifier),
	} {
		m(d)
	}
	for _, m := range mods {
		m(d)
	}
	return d
}

// firmware classifies the client. iPXE identifies itself with user class
// "iPXE" (option 77) or its encapsulated options (175); everything else is
// told apart by its architecture (option 93, RFC 4578); none means BIOS.
func firmware(req *dhcpv4.DHCPv4) (Firmware, error) {
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			return FirmwareIPXE, nil
		}
	}
	if req.Options.Has(dhcpv4.GenericOptionCode(175)) {
		return FirmwareIPXE, nil
	}
	archs := req.ClientArch()
	if len(archs) == 0 && req.Options.Has(dhcpv4.OptionClientSystemArchitectureType) {
		return "", ignore("bad-arch", "option 93 is malformed")
	}
	if len(archs) == 0 {
		return FirmwareBIOS, nil
	}
	// HTTP boot architectures count only with the HTTPClient class: a
	// PXEClient naming one asks for something it cannot boot.
	if fw, ok := httpArch[archs[0]]; ok && strings.HasPrefix(req.ClassIdentifier(), ClassHTTP) {
		return fw, nil
	}
	switch archs[0] {
	case iana.INTEL_X86PC:
		return FirmwareBIOS, nil
	case iana.EFI_X86_64, iana.EFI_BC:
		return FirmwareEFIx64, nil
	case iana.EFI_ARM64:
		return FirmwareEFIarm64, nil
	}
	return "", ignore("unsupported-arch", "client architecture %s (%d)", archs[0], uint16(archs[0]))
}

// Destination is where the reply to a request that came from peer goes
// (RFC 2131, section 4.1): to the relay if there is one; to the sender
// itself when it already has an address (the PXE REQUEST to port 4011 comes
// from a configured client, and UEFI sends it from port 4011); otherwise
// broadcast, since the client cannot receive unicast yet.
func Destination(req *dhcpv4.DHCPv4, peer *net.UDPAddr) *net.UDPAddr {
	if gw := req.GatewayIPAddr; gw != nil && !gw.IsUnspecified() {
		return &net.UDPAddr{IP: gw, Port: dhcpv4.ServerPort}
	}
	if peer != nil && peer.IP != nil && !peer.IP.IsUnspecified() && !peer.IP.Equal(net.IPv4bcast) {
		return peer
	}
	if ci := req.ClientIPAddr; ci != nil && !ci.IsUnspecified() {
		return &net.UDPAddr{IP: ci, Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}
