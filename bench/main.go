// Command bench measures the appliance's boot services against the usual
// stand-alone servers, side by side in one run, on this machine:
//
//   - proxy DHCP: `moobi serve` vs dnsmasq in proxy mode, under perfdhcp
//     sending PXE DISCOVERs from many MACs (a fixed rate, then flat out);
//   - full DHCP: `moobi serve` in full DHCP mode vs dnsmasq as the VLAN's
//     DHCP server, under perfdhcp's full DORA exchanges (section fulldhcp);
//   - TFTP: `moobi serve` vs tftpd-hpa, an iPXE binary and a 16 MiB file,
//     1 and 32 clients at once;
//   - HTTP: `moobi serve` vs nginx (sendfile), a kernel-sized and an
//     initramfs-sized file, 1 and 32 clients at once.
//
// Servers and clients run in two network namespaces (moobi-bench-PID-srv and
// moobi-bench-PID-cli) joined by a veth pair; the host's root namespace is
// never configured. Each server runs alone in turn. The namespaces are
// deleted at the end, on error and on SIGINT/SIGTERM.
//
//	go run ./bench --moobi bin/moobi [--out bench-results.md]
//
// It needs root and installs nothing: a missing tool fails the run, naming
// the Debian package to install (`make bench` installs them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	// Internal sub-commands: load generators run inside the client
	// namespace, the profiling harness inside the server namespace.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "tftp-load":
			os.Exit(tftpLoadMain(os.Args[2:]))
		case "http-load":
			os.Exit(httpLoadMain(os.Args[2:]))
		case "http-fetch":
			os.Exit(httpFetchMain(os.Args[2:]))
		case "harness":
			os.Exit(harnessMain(os.Args[2:]))
		}
	}
	os.Exit(run())
}

type config struct {
	moobi       string
	out         string
	repeat      int
	dhcpRate    int
	dhcpSeconds int
	dhcpMACs    int
	dhcpCores   float64
	duration    time.Duration
	clients     []int
	sections    map[string]bool
	profile     string
	ipxe        string
	keep        bool
	rack        *rackFlags // rack distribution and footprint sections (rack.go)
	boot        *bootFlags // boot section (boot.go)
}

// allSections are the parts of a run, in the order they run.
var allSections = []string{"dhcp", "fulldhcp", "tftp", "http", "rack", "footprint", "boot"}

func run() int {
	var c config
	var clients, only string
	flag.StringVar(&c.moobi, "moobi", "bin/moobi", "the moobi binary to measure (`make build`)")
	flag.StringVar(&c.out, "out", "bench-results.md", "write the results as markdown to this file")
	flag.IntVar(&c.repeat, "repeat", 5, "runs of each measurement per server, alternating servers; the median run is reported")
	flag.IntVar(&c.dhcpRate, "dhcp-rate", 1000, "DISCOVERs per second of the fixed-rate proxy DHCP run")
	flag.IntVar(&c.dhcpSeconds, "dhcp-seconds", 10, "length of each proxy DHCP run, in seconds")
	flag.Float64Var(&c.dhcpCores, "dhcp-held-cores", 0.25, "proxy DHCP: a third run flat out with each server held to this share of a core by a cgroup CPU limit, so that the server, not perfdhcp, sets the rate (0: no such run)")
	flag.IntVar(&c.dhcpMACs, "dhcp-macs", 1000000, "proxy DHCP: simulated clients (perfdhcp -R), each with its own MAC")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "TFTP/HTTP: each client repeats its download until this much time has passed (at least once)")
	flag.StringVar(&clients, "clients", "1,32", "TFTP/HTTP: numbers of clients at once")
	flag.StringVar(&only, "only", strings.Join(allSections, ","), "sections to run")
	flag.StringVar(&c.profile, "profile", "auto", "CPU-profile moobi's code under the heaviest load of a section: auto (when a target is missed), always or never")
	flag.StringVar(&c.ipxe, "ipxe", "/usr/lib/ipxe/undionly.kpxe", "the iPXE binary served over TFTP")
	flag.BoolVar(&c.keep, "keep", false, "keep the scratch folder (logs, configs, profiles)")
	c.rack = registerRackFlags(flag.CommandLine)
	c.boot = registerBootFlags(flag.CommandLine)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		return 2
	}
	for _, f := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: --clients %q: want numbers like 1,32\n", clients)
			return 2
		}
		c.clients = append(c.clients, n)
	}
	c.sections = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allSections, s) {
			fmt.Fprintf(os.Stderr, "bench: --only %q: sections are %s\n", only, strings.Join(allSections, ", "))
			return 2
		}
		c.sections[s] = true
	}
	if c.profile != "auto" && c.profile != "always" && c.profile != "never" {
		fmt.Fprintln(os.Stderr, "bench: --profile is auto, always or never")
		return 2
	}
	if c.repeat < 1 || c.dhcpRate < 1 || c.dhcpSeconds < 1 || c.dhcpMACs < 1 || c.duration <= 0 {
		fmt.Fprintln(os.Stderr, "bench: --repeat, --dhcp-rate, --dhcp-seconds, --dhcp-macs and --duration must be positive")
		return 2
	}
	if c.dhcpCores < 0 || c.dhcpCores > 1 {
		fmt.Fprintln(os.Stderr, "bench: --dhcp-held-cores is between 0 (no held run) and 1")
		return 2
	}
	var err error
	if c.moobi, err = filepath.Abs(c.moobi); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if err := preflight(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := bench(ctx, c); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted; namespaces deleted")
			return 130
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// tools maps each program the run needs to the Debian package shipping it
// and the sections needing it.
var tools = []struct {
	path, pkg string
	sections  []string
}{
	{"ip", "iproute2", allSections},
	{"perfdhcp", "kea-admin", []string{"dhcp", "fulldhcp"}},
	{"dnsmasq", "dnsmasq-base", []string{"dhcp", "fulldhcp", "rack", "footprint", "boot"}},
	{"in.tftpd", "tftpd-hpa", []string{"tftp"}},
	{"nginx", "nginx", []string{"http", "boot"}},
	{"curl", "curl", []string{"boot"}},
	{"busybox", "busybox-static", []string{"boot"}},
	{"tc", "iproute2", []string{"rack", "footprint"}},
	{"mksquashfs", "squashfs-tools", []string{"rack", "footprint", "boot"}},
	{"qemu-system-x86_64", "qemu-system-x86", []string{"boot"}},
}

// preflight checks root and the tools the chosen sections need, naming the
// package of a missing one.
func preflight(c config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	var missing []string
	pkgs := map[string]bool{}
	for _, t := range tools {
		if !slices.ContainsFunc(t.sections, func(s string) bool { return c.sections[s] }) {
			continue
		}
		if _, err := lookPath(t.path); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", t.path, t.pkg))
			pkgs[t.pkg] = true
		}
	}
	if c.sections["tftp"] || c.sections["dhcp"] {
		if _, err := os.Stat(c.ipxe); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package ipxe)", c.ipxe))
			pkgs["ipxe"] = true
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: install with `apt-get install -y --no-install-recommends %s` (or run `make bench` as root)",
			strings.Join(missing, ", "), strings.Join(slices.Sorted(maps.Keys(pkgs)), " "))
	}
	if st, err := os.Stat(c.moobi); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("--moobi %s: not a file (run `make build`)", c.moobi)
	}
	return nil
}

// lookPath finds a program in $PATH or the sbin folders (a root shell
// without /usr/sbin in $PATH still finds in.tftpd and perfdhcp).
func lookPath(name string) (string, error) {
	for _, dir := range append(filepath.SplitList(os.Getenv("PATH")), "/usr/sbin", "/sbin", "/usr/bin", "/bin") {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func mustLook(name string) string {
	p, err := lookPath(name)
	if err != nil {
		return name
	}
	return p
}
