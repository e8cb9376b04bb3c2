package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// startSite runs dnsmasq in the site namespace as an address-only DHCP
// server (no boot options) with IPv6 router adverts, so that iPXE does not
// wait for them, and waits until it is serving.
func (l *Lab) startSite(ctx context.Context) error {
	args := []string{"netns", "exec", l.siteNS, "dnsmasq",
		"--no-daemon",
		"--conf-file=/dev/null",
		"--port=0", // no DNS
		"--bind-interfaces",
		"--interface=" + siteVeth,
		"--no-ping",
		"--dhcp-range=" + DHCPRangeStart + "," + DHCPRangeEnd + "," + Netmask + ",1h",
		"--dhcp-leasefile=" + l.SiteLeaseFile(),
		"--log-dhcp",
		"--log-facility=-",
		"--pid-file", // none
		"--enable-ra",
		"--dhcp-range=fd99::,ra-only",
	}
	if l.siteNextServer != "" {
		// No file name: siaddr only, so PXE firmware still takes its
		// boot file from the proxy.
		args = append(args, "--dhcp-boot=,,"+l.siteNextServer)
	}
	p, err := startProc(context.Background(), l.log, l.SiteDHCPLogPath(), "ip", args...)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.site = p
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return waitFile(ctx, l.SiteDHCPLogPath(), "DHCP, IP range "+DHCPRangeStart, "dnsmasq", p)
}

// SiteDHCPLogPath returns the path of the site dnsmasq's log (stdout and
// stderr, with --log-dhcp).
func (l *Lab) SiteDHCPLogPath() string { return filepath.Join(l.dir, "site-dnsmasq.log") }

// SiteDHCPLog returns the site dnsmasq's log so far.
func (l *Lab) SiteDHCPLog() string { return readFile(l.SiteDHCPLogPath()) }

// SiteLeaseFile returns the path of the site dnsmasq's lease file.
func (l *Lab) SiteLeaseFile() string { return filepath.Join(l.dir, "site-dnsmasq.leases") }

// WaitSiteDHCP polls the site dnsmasq log until it contains substr (for
// example "DHCPACK(veth0) 10.99.0.1xx 52:54:00:..."), or ctx ends, or dnsmasq
// exits. The error includes the tail of the log.
func (l *Lab) WaitSiteDHCP(ctx context.Context, substr string) error {
	l.mu.Lock()
	p := l.site
	l.mu.Unlock()
	return waitFile(ctx, l.SiteDHCPLogPath(), substr, "site dnsmasq", p)
}

// WaitSiteLease polls the site dnsmasq log until it has acknowledged a
// lease for mac (a "DHCPACK(veth0) <ip> <mac>" line) and returns the IPv4
// address leased. It fails when ctx ends or dnsmasq exits.
func (l *Lab) WaitSiteLease(ctx context.Context, mac string) (string, error) {
	re := regexp.MustCompile(`DHCPACK\(` + siteVeth + `\) (\S+) ` + regexp.QuoteMeta(strings.ToLower(mac)) + `\b`)
	var ip string
	match := func(s string) bool {
		if m := re.FindStringSubmatch(s); m != nil {
			ip = m[1]
			return true
		}
		return false
	}
	l.mu.Lock()
	p := l.site
	l.mu.Unlock()
	err := waitMatch(ctx, l.SiteDHCPLogPath(), match, fmt.Sprintf("DHCPACK for %s", mac), "site dnsmasq", p)
	return ip, err
}

// StopSiteDHCP stops the site DHCP server, as when it fails: clients get
// no lease until StartSiteDHCP runs again. Close stops it too.
func (l *Lab) StopSiteDHCP() error {
	l.mu.Lock()
	p := l.site
	l.mu.Unlock()
	if p == nil {
		return fmt.Errorf("site DHCP server not running")
	}
	p.kill()
	if !p.waitTimeout(10 * time.Second) {
		return fmt.Errorf("site dnsmasq did not exit")
	}
	return nil
}
