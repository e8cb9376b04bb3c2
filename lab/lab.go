// Package lab builds throwaway network-namespace labs with a site DHCP server
// and qemu VMs, for end-to-end tests and the demo.
//
// A Lab consists of two network namespaces created with `ip netns`:
//
//   - the appliance namespace (ApplianceNS) holds the Linux bridge br0
//     (ApplianceAddr/24 and ApplianceAddr6/64), one tap device per VM and is
//     where the appliance under test runs (see Lab.Command);
//   - the site namespace is joined to br0 by a veth pair (SiteAddr/24,
//     SiteAddr6/64) and runs dnsmasq as the "site" DHCP server, which hands
//     out addresses (DHCPRangeStart..DHCPRangeEnd) and IPv6 router adverts
//     but no boot information.
//
// VMs are qemu-system-x86_64 processes (TCG only) started inside the
// appliance namespace, with their serial console written to a log file.
// Everything requires root and the Debian packages iproute2, dnsmasq-base,
// qemu-system-x86, ipxe-qemu, ovmf and busybox-static. The host's root
// network namespace is never configured: only namespaces are created and
// deleted.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Addresses and names used inside every lab.
const (
	ApplianceAddr  = "10.99.0.1" // br0 in the appliance namespace, /24
	ApplianceAddr6 = "fd99::1"   // br0 in the appliance namespace, /64
	SiteAddr       = "10.99.0.2" // site DHCP server, /24
	SiteAddr6      = "fd99::2"   // site DHCP server, /64
	Netmask        = "255.255.255.0"
	DHCPRangeStart = "10.99.0.100" // first address leased by the site DHCP server
	DHCPRangeEnd   = "10.99.0.200" // last address leased by the site DHCP server
	BridgeName     = "br0"

	// NSPrefix starts the name of every namespace a lab creates.
	NSPrefix = "moobi-"
)

// Options configures New.
type Options struct {
	// Dir is a scratch directory for logs, lease files and firmware variable
	// stores. If empty, a temporary directory is created and removed by Close.
	Dir string
	// Log, if set, receives one line per command the lab runs.
	Log io.Writer
	// NoSiteDHCP leaves the site DHCP server off: a bare boot VLAN, where
	// the appliance runs in full DHCP mode (the site namespace and its
	// veth still exist).
	NoSiteDHCP bool
	// SiteNextServer, if set, is the next server (siaddr) the site DHCP
	// server names in its answers, as an operator sets ISC dhcpd's
	// next-server (dnsmasq names itself otherwise). Debian's network grub
	// takes its TFTP server from there, not from the proxy's answer.
	SiteNextServer string
}

// Lab is a running lab. Create it with New and always Close it.
type Lab struct {
	id     string
	appNS  string
	siteNS string
	dir    string
	ownDir bool
	log    io.Writer
	// siteNextServer is Options.SiteNextServer.
	siteNextServer string

	mu     sync.Mutex
	nss    []string // namespaces created, deleted by Close
	taps   []string // taps created in appNS
	vms    []*VM
	nextVM int
	hosts  int
	site   *proc
	closed bool
}

// New creates the namespaces, the bridge and the veth pair, and starts the
// site DHCP server. It returns when dnsmasq reports that it is serving. On
// error everything created so far is torn down.
func New(ctx context.Context, opt Options) (_ *Lab, err error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	l := &Lab{id: fmt.Sprintf("%s-%d", hex.EncodeToString(b), os.Getpid()), dir: opt.Dir, log: opt.Log}
	l.appNS = NSPrefix + l.id + "-app"
	l.siteNS = NSPrefix + l.id + "-site"
	l.siteNextServer = opt.SiteNextServer
	if l.dir == "" {
		if l.dir, err = os.MkdirTemp("", "moobi-lab-"); err != nil {
			return nil, err
		}
		l.ownDir = true
	} else if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if err := l.setupNetwork(ctx); err != nil {
		return nil, fmt.Errorf("lab: network setup: %w", err)
	}
	if opt.NoSiteDHCP {
		return l, nil
	}
	if err := l.startSite(ctx); err != nil {
		return nil, fmt.Errorf("lab: site DHCP server: %w", err)
	}
	return l, nil
}

// ID returns the lab's unique id, part of all its namespace names.
func (l *Lab) ID() string { return l.id }

// Dir returns the lab's scratch directory.
func (l *Lab) Dir() string { return l.dir }

// ApplianceNS returns the name of the appliance network namespace.
func (l *Lab) ApplianceNS() string { return l.appNS }

// SiteNS returns the name of the site network namespace (dnsmasq).
func (l *Lab) SiteNS() string { return l.siteNS }

// Bridge returns the name of the bridge in the appliance namespace.
func (l *Lab) Bridge() string { return BridgeName }

// Command returns a command that runs name inside the appliance namespace
// (via `ip netns exec`). Processes still running in the namespace when the
// lab is closed are killed by Close.
func (l *Lab) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return NetnsCommand(ctx, l.appNS, name, args...)
}

// NetnsCommand returns a command that runs name inside network namespace ns.
func NetnsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Close stops all VMs and dnsmasq, kills any other process left in the
// lab's namespaces, removes the taps and deletes the namespaces. It is safe
// to call more than once and after a partial New.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	vms, site, taps, nss := l.vms, l.site, l.taps, l.nss
	l.mu.Unlock()

	var errs []error
	for _, vm := range vms {
		vm.p.kill()
	}
	if site != nil {
		site.kill()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ns := range nss {
		if err := KillNetnsProcesses(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, vm := range vms {
		if !vm.p.waitTimeout(10 * time.Second) {
			errs = append(errs, fmt.Errorf("lab: qemu for VM %s did not exit", vm.Name))
		}
	}
	if site != nil && !site.waitTimeout(10*time.Second) {
		errs = append(errs, errors.New("lab: dnsmasq did not exit"))
	}
	for _, tap := range taps {
		// Best effort: deleting the namespace destroys taps anyway.
		l.ip(ctx, "-n", l.appNS, "link", "del", tap)
	}
	for i := len(nss) - 1; i >= 0; i-- {
		if err := DeleteNetns(ctx, nss[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if l.ownDir {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) logf(format string, args ...any) {
	if l.log != nil {
		fmt.Fprintf(l.log, "lab %s: "+format+"\n", append([]any{l.id}, args...)...)
	}
}
