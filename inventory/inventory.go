// Package inventory reads, validates and serves hosts.yaml: the appliance's
// settings, the boot profiles and the hosts that boot with them. A parsed
// inventory is immutable; Store swaps whole snapshots so that a bad edit never
// replaces a good one.
package inventory

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
)

// Defaults for the appliance section.
const (
	DefaultHTTPPort     = 80
	DefaultDataDir      = "/var/lib/moobi"
	DefaultIPXEDir      = "/usr/lib/ipxe"
	DefaultUEFIBinary   = "ipxe.efi"
	DefaultBIOSBinary   = "undionly.kpxe"
	DefaultARM64Binary  = "ipxe-arm64.efi"
	UnknownHostsIgnore  = "ignore"
	defaultInitrdSuffix = "node-initrd.cpio.gz"
	// defaultSigningKey is relative to DataDir.
	defaultSigningKey = "state/boot-signing.key"
	// DefaultSeedRestCopies is appliance.seed_rest_copies when unset.
	DefaultSeedRestCopies = 1
)

// Values of a profile's cache_fallback: what a node does when its cache
// device is missing or too small for the image. CacheFallbackFail (the
// default) fails the boot; CacheFallbackRAM caches the image in RAM
// instead, if it fits.
const (
	CacheFallbackFail = "fail"
	CacheFallbackRAM  = "ram"
)

// Inventory is one validated snapshot of hosts.yaml.
type Inventory struct {
	// File is the path the inventory was read from.
	File      string
	Appliance Appliance
	Profiles  map[string]*Profile
	Hosts     map[string]*Host
	byMAC     map[string]*Host
}

// Appliance is the `appliance:` section.
type Appliance struct {
	// Interface is the boot VLAN interface the DHCP and TFTP services bind to.
	Interface string
	// Address is the advertised IPv4 address; nil means the interface's first IPv4.
	Address net.IP
	// HTTPPort is the port of the HTTP service (iPXE scripts, kernels, API).
	HTTPPort int
	// DataDir holds images/, tftp/ and the appliance's state.
	DataDir string
	// IPXEDir holds the iPXE binaries served over TFTP.
	IPXEDir string
	// NodeInitrd is the node initramfs served to image profiles.
	NodeInitrd string
	// SigningKey is the ed25519 private key file that signs boot configs;
	// `moobi serve` and `moobi initrd build --config` create it if missing.
	// The node initramfs carries its public half.
	SigningKey string
	// UnknownHosts is "ignore" or the name of a profile that boots unknown MACs.
	UnknownHosts string
	// BIOSBinary, UEFIBinary and ARM64Binary name the iPXE binaries, relative
	// to IPXEDir, offered to BIOS, UEFI x64 and UEFI arm64 PXE firmware.
	BIOSBinary  string
	UEFIBinary  string
	ARM64Binary string
	// Shim and Grub are the signed boot loaders served over TFTP to hosts
	// with secure_boot: the shim first, as shimx64.efi, which loads the
	// grub from the same server as grubx64.efi.
	Shim string
	Grub string
	// SeedUploadMbit caps the appliance's BitTorrent upload, in Mbit/s (0:
	// no cap). Nodes then take more from each other, and the boot traffic
	// of a rack leaves the appliance's uplink room for everything else.
	SeedUploadMbit int
	// SeedRestCopies pauses the appliance's BitTorrent upload of a version
	// while every piece of it is held by at least this many nodes (0:
	// never pause). Nodes take from each other what they would otherwise
	// all take from the appliance: its uplink carries about one copy of
	// each version however large the rack.
	SeedRestCopies int
	// DHCP is proxy (the default) or full DHCP with its address pool.
	DHCP DHCP
	// AdminListen, if set (HOST:PORT), is where the read-only views are
	// served instead of the boot network's HTTP port.
	AdminListen string
	// ReadAuth is ReadAuthNone (the default) or ReadAuthToken: the
	// read-only views need the admin token too.
	ReadAuth string
	// TFTPPerClient bounds the TFTP transfers one address may have at
	// once (0: the TFTP server's default, 4).
	TFTPPerClient int
}

// Profile is one entry of `profiles:`. Exactly one of Kernel (a direct
// netboot) or Image (a Moobi image from the catalog) is set.
type Profile struct {
	Name    string
	Kernel  string
	Initrd  []string
	Cmdline string
	Image   string
	Cache   string
	// CacheFallback is CacheFallbackFail or CacheFallbackRAM ("" when the
	// profile has no cache device).
	CacheFallback string
	// BMC holds the bmc fields its hosts inherit (nil: none).
	BMC *BMC
	// Identity is what the profile's hosts get on their writable root.
	Identity
	// SecureBoot boots the profile's hosts through the signed chain
	// (shim, grub, signed kernel) instead of iPXE.
	SecureBoot bool
	secureBoot secureBootFlag
}

// Direct reports whether the profile boots a kernel and initrds directly.
func (p *Profile) Direct() bool { return p.Kernel != "" }

// InitrdName is the name iPXE gives the i-th initrd: the base name of its
// file. Kernel command lines refer to initrds by this name under UEFI.
func (p *Profile) InitrdName(i int) string { return filepath.Base(p.Initrd[i]) }

// Host is one entry of `hosts:`.
type Host struct {
	Name    string
	MAC     net.HardwareAddr
	Profile string
	// BMC is the host's BMC, its profile's bmc fields merged in (nil: none).
	BMC *BMC
	// Identity is the host's own overlay, vars and keys (its profile's are
	// in the Profile; Merged combines them).
	Identity
	// IP is the host's static address in full DHCP mode (invalid: none).
	IP netip.Addr
	// SecureBoot is the host's secure_boot, else its profile's.
	SecureBoot bool
	secureBoot secureBootFlag
	line       int
	ipLine     int
}

// Lookup returns the host with the given MAC and the profile it boots. A MAC
// not in hosts boots the unknown_hosts profile, if one is set, under a Host
// named after its MAC. ok is false when the appliance must not boot the MAC.
func (inv *Inventory) Lookup(mac net.HardwareAddr) (h *Host, p *Profile, ok bool) {
	if h, found := inv.byMAC[mac.String()]; found {
		return h, inv.Profiles[h.Profile], true
	}
	if inv.Appliance.UnknownHosts == "" || inv.Appliance.UnknownHosts == UnknownHostsIgnore {
		return nil, nil, false
	}
	p = inv.Profiles[inv.Appliance.UnknownHosts]
	if p == nil {
		return nil, nil, false
	}
	name := "unknown-" + strings.ReplaceAll(mac.String(), ":", "")
	return &Host{Name: name, MAC: mac, Profile: p.Name, SecureBoot: p.SecureBoot}, p, true
}

// ParseMAC parses a colon- or dash-separated 6-byte MAC address.
func ParseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, err
	}
	if len(mac) != 6 {
		return nil, &net.AddrError{Err: "not a 6-byte Ethernet address", Addr: s}
	}
	return mac, nil
}
