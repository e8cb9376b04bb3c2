// Package node is the node client that runs as /init of the node
// initramfs: it brings up the machine's network, fetches the node's image
// over BitTorrent into its cache (RAM or a local disk), mounts it read-only
// under a RAM overlay, starts a seeder that outlives the pivot, and
// switch_roots into the image's own init.
package node

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Params are what the appliance put on the kernel command line.
type Params struct {
	// Server is the appliance's HTTP root (moobi.server=).
	Server string
	// MAC is the boot NIC's address (moobi.mac=).
	MAC net.HardwareAddr
	// Hostname is the host's name in hosts.yaml (moobi.hostname=).
	Hostname string
	// Version is the image version the kernel belongs to (moobi.version=):
	// the node boots no other.
	Version string
	// BootToken is this boot's token (moobi.boot=), presented with every
	// request to the appliance.
	BootToken string
	// RebootAfter is how long to retry a failing boot before rebooting
	// (moobi.reboot_after=, default 10m).
	RebootAfter time.Duration
	// Init is the image's init (moobi.init=, default /sbin/init).
	Init string
}

// ParseCmdline reads the moobi.* parameters of a kernel command line.
func ParseCmdline(cmdline string) (Params, error) {
	p := Params{RebootAfter: 10 * time.Minute, Init: "/sbin/init"}
	for _, f := range strings.Fields(cmdline) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || !strings.HasPrefix(k, "moobi.") {
			continue
		}
		switch k {
		case "moobi.server":
			if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return p, fmt.Errorf("moobi.server=%q is not an http(s) URL", v)
			}
			p.Server = strings.TrimRight(v, "/")
		case "moobi.mac":
			mac, err := net.ParseMAC(v)
			if err != nil || len(mac) != 6 {
				return p, fmt.Errorf("moobi.mac=%q is not a MAC address", v)
			}
			p.MAC = mac
		case "moobi.hostname":
			p.Hostname = v
		case "moobi.version":
			p.Version = v
		case "moobi.boot":
			p.BootToken = v
		case "moobi.init":
			if !strings.HasPrefix(v, "/") {
				return p, fmt.Errorf("moobi.init=%q is not an absolute path", v)
			}
			p.Init = v
		case "moobi.reboot_after":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return p, fmt.Errorf("moobi.reboot_after=%q is not a duration", v)
			}
			p.RebootAfter = d
		}
	}
	if p.Server == "" || p.MAC == nil {
		return p, fmt.Errorf("the kernel command line lacks moobi.server= or moobi.mac=: was this kernel booted by the appliance?")
	}
	return p, nil
}
