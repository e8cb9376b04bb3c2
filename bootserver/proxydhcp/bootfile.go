package proxydhcp

import (
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Firmware kinds that boot over HTTP (UEFI HTTP boot, UEFI 2.5 section
// 24.7): vendor class "HTTPClient" and architecture 16 (x64) or 19
// (arm64) in option 93 (RFC 4578, IANA processor architecture types).
const (
	FirmwareHTTPx64   Firmware = "efi-x64-http"
	FirmwareHTTParm64 Firmware = "efi-arm64-http"
)

// Vendor classes (option 60) the boot-file decision tells apart, and
// which a reply carries back.
const (
	ClassPXE  = "PXEClient"
	ClassHTTP = "HTTPClient"
)

// bootRule says how a firmware kind gets its boot file.
type bootRule struct {
	// binary is the firmware whose iPXE binary (Env.BootFiles) is served;
	// "" means the host's iPXE script URL instead.
	binary Firmware
	// http serves the binary as a full URL (Env.BinaryURL) instead of a
	// TFTP name, and the reply carries vendor class HTTPClient.
	http bool
}

// bootRules is the one table from firmware kind to boot file, shared by
// proxy and full DHCP. A later rule set (a host booting with Secure Boot,
// which first loads a signed shim) extends this table, not the callers.
var bootRules = map[Firmware]bootRule{
	FirmwareBIOS:      {binary: FirmwareBIOS},
	FirmwareEFIx64:    {binary: FirmwareEFIx64},
	FirmwareEFIarm64:  {binary: FirmwareEFIarm64},
	FirmwareHTTPx64:   {binary: FirmwareEFIx64, http: true},
	FirmwareHTTParm64: {binary: FirmwareEFIarm64, http: true},
	FirmwareIPXE:      {},
}

// Boot is the boot-file decision for one client.
type Boot struct {
	Firmware Firmware
	// File is the TFTP name of an iPXE binary, or a URL (the iPXE
	// script for iPXE, the iPXE binary for UEFI HTTP boot).
	File string
	// Class is the vendor class (option 60) the reply carries:
	// ClassHTTP for HTTP boot, ClassPXE otherwise.
	Class string
}

// BootFile classifies the client asking with req and picks its boot file
// from the bootRules table. It returns an *Ignore when the client's
// firmware is unknown or no binary is installed for it.
func BootFile(req *dhcpv4.DHCPv4, env Env) (Boot, error) {
	fw, err := firmware(req)
	if err != nil {
		return Boot{}, err
	}
	rule, ok := bootRules[fw]
	if !ok {
		return Boot{}, ignore("unsupported-arch", "no boot rule for %s firmware", fw)
	}
	mac := req.ClientHWAddr
	if fw == FirmwareEFIx64 && env.SecureBoot != nil && env.SecureBoot(mac) {
		// Secure Boot firmware runs only signed code: shim (signed by
		// Microsoft's UEFI CA), which loads the signed grub by TFTP from
		// the same server. Debian ships no signed iPXE.
		if env.ShimFile == "" {
			return Boot{}, ignore("no-binary", "no signed shim for %s firmware of a secure_boot host", fw)
		}
		return Boot{Firmware: fw, File: env.ShimFile, Class: ClassPXE}, nil
	}
	if rule.binary == "" {
		return Boot{Firmware: fw, File: env.ScriptURL(mac), Class: ClassPXE}, nil
	}
	name := env.BootFiles[rule.binary]
	if name == "" {
		return Boot{}, ignore("no-binary", "no iPXE binary for %s firmware in ipxe_dir", fw)
	}
	if !rule.http {
		return Boot{Firmware: fw, File: name, Class: ClassPXE}, nil
	}
	if env.BinaryURL == nil {
		return Boot{}, ignore("no-http-boot", "HTTP boot is not served")
	}
	return Boot{Firmware: fw, File: env.BinaryURL(name), Class: ClassHTTP}, nil
}

// IsBootClient reports whether the request comes from boot firmware:
// vendor class PXEClient or HTTPClient (both followed by ":Arch:...").
func IsBootClient(req *dhcpv4.DHCPv4) bool {
	c := req.ClassIdentifier()
	return strings.HasPrefix(c, ClassPXE) || strings.HasPrefix(c, ClassHTTP)
}

// httpArch maps the HTTP boot architectures to their firmware kind.
var httpArch = map[iana.Arch]Firmware{
	iana.EFI_X86_64_HTTP: FirmwareHTTPx64,
	iana.EFI_ARM64_HTTP:  FirmwareHTTParm64,
}

// NewReply starts a reply to req with the request's transaction id, relay
// fields and client identifier, then applies mods (see newReply).
func NewReply(req *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return newReply(req, mods...)
}
