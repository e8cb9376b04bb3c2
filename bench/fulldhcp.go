package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"moobi/lab"
)

// fullDHCPClients is how many clients the full DHCP section simulates:
// they must fit the lab's /24 pool (10.99.0.20-10.99.0.250).
const fullDHCPClients = 200

// fullDHCPReturnRate is the rate, in exchanges started per second, of the
// returning clients' pass.
const fullDHCPReturnRate = 500

// fullDHCPResult is one perfdhcp DORA run against a full DHCP server.
type fullDHCPResult struct {
	sent, recv, drops [2]int // DISCOVER-OFFER, REQUEST-ACK
	rate              float64
}

// fullDHCPSection runs perfdhcp's full DORA exchange against `moobi
// serve` in full DHCP mode and against dnsmasq as the VLAN's DHCP server,
// in a lab without a site DHCP server: a first pass of new clients (each
// server checks an address is free before its first offer: moobi pings it
// for 500 ms, dnsmasq pings it too), then a pass flat out of the same
// clients coming back (no check: they keep their leases).
func (b *runner) fullDHCPSection(ctx context.Context) (extraSection, error) {
	l, err := lab.New(ctx, lab.Options{Dir: filepath.Join(b.s.dir, "fulldhcp"), NoSiteDHCP: true})
	if err != nil {
		return extraSection{}, err
	}
	defer l.Close()
	cli, err := l.AddHost(ctx, "perf")
	if err != nil {
		return extraSection{}, err
	}
	if out, err := exec.CommandContext(ctx, "ip", "-n", cli, "addr", "add", "10.99.0.5/24", "dev", "eth0").CombinedOutput(); err != nil {
		return extraSection{}, fmt.Errorf("client address: %v: %s", err, out)
	}
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`appliance:
  interface: %s
  http_port: 8080
  data_dir: %s/data
  ipxe_dir: /usr/lib/ipxe
  dhcp: {mode: full, subnet: 10.99.0.0/24, range: 10.99.0.20-10.99.0.250, router: 10.99.0.1, lease_time: 1h}
`, lab.BridgeName, l.Dir())), 0o644); err != nil {
		return extraSection{}, err
	}
	dnsmasq := func(extra ...string) func() (*proc, error) {
		return func() (*proc, error) {
			b.seq++
			log := filepath.Join(l.Dir(), fmt.Sprintf("dnsmasq-%03d.log", b.seq))
			os.Remove(filepath.Join(l.Dir(), "dnsmasq.leases"))
			args := append([]string{"--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
				"--interface=" + lab.BridgeName, "--bind-interfaces", "--pid-file=", "--dhcp-authoritative",
				"--dhcp-leasefile=" + filepath.Join(l.Dir(), "dnsmasq.leases"), "--log-facility=" + log,
				"--dhcp-range=10.99.0.20,10.99.0.250,255.255.255.0,1h", "--dhcp-option=3,10.99.0.1"}, extra...)
			p, err := startIn(l.ApplianceNS(), log, mustLook("dnsmasq"), args...)
			if err != nil {
				return nil, err
			}
			return p, p.waitListening(ctx, "udp", 67, 10*time.Second)
		}
	}
	servers := []struct {
		name  string
		start func() (*proc, error)
		sig   syscall.Signal
	}{
		{"moobi", func() (*proc, error) {
			p, err := startIn(l.ApplianceNS(), filepath.Join(l.Dir(), "moobi.log"), b.c.moobi, "serve", "--config", cfg)
			if err != nil {
				return nil, err
			}
			return p, p.waitLog(ctx, "appliance serving", 30*time.Second)
		}, syscall.SIGINT},
		{"dnsmasq --no-ping", dnsmasq("--no-ping"), syscall.SIGTERM},
		{"dnsmasq", dnsmasq(), syscall.SIGTERM},
	}
	var md strings.Builder
	md.WriteString("## Full DHCP mode: perfdhcp DORA, moobi vs dnsmasq\n\n")
	fmt.Fprintf(&md, "perfdhcp (Kea) runs full DISCOVER-OFFER-REQUEST-ACK exchanges from %d simulated clients, from a namespace on the lab bridge. New clients: %d exchanges started at 100/s; moobi pings each new address for 500 ms before offering it, dnsmasq pings too (it then spaces new leases about 3 s apart) unless run with `--no-ping`. Returning clients: the same clients, holding leases, %d exchanges started per second for 10 s. Every lease is on disk before its ACK (moobi: one fsync'd write per batch of requests).\n\n", fullDHCPClients, 4*fullDHCPClients, fullDHCPReturnRate)
	md.WriteString("| server | pass | DORA completed / started | drops (OFFER, ACK) | rate (exchanges/s) |\n|---|---|---|---|---|\n")
	var targets []target
	rates := map[string]float64{}
	for _, s := range servers {
		p, err := s.start()
		if err != nil {
			if p != nil {
				p.stop(syscall.SIGKILL)
			}
			return extraSection{}, fmt.Errorf("%s: %w", s.name, err)
		}
		for _, pass := range []struct {
			name string
			args []string
		}{
			{"new clients", []string{"-r", "100", "-n", strconv.Itoa(4 * fullDHCPClients)}},
			{"returning clients", []string{"-r", strconv.Itoa(fullDHCPReturnRate), "-p", "10"}},
		} {
			r, err := b.fullDHCPRun(ctx, cli, s.name, pass.args)
			if err != nil {
				p.stop(s.sig)
				return extraSection{}, err
			}
			fmt.Fprintf(&md, "| %s | %s | %d / %d | %d, %d | %.0f |\n", s.name, pass.name, r.recv[1], r.sent[0], r.drops[0], r.drops[1], r.rate)
			fmt.Printf("bench: full DHCP, %s, %s: %+v\n", s.name, pass.name, r)
			if strings.HasPrefix(pass.name, "returning") {
				rates[s.name] = r.rate
			}
		}
		p.stop(s.sig)
	}
	if ref := rates["dnsmasq --no-ping"]; ref > 0 {
		targets = append(targets, target{what: "full DHCP: returning clients' DORA rate", moobi: fmt.Sprintf("%.0f/s", rates["moobi"]),
			ref: fmt.Sprintf("%.0f/s", ref), ratio: fmt.Sprintf("%.2f×", rates["moobi"]/ref),
			pass: rates["moobi"] >= 0.9*ref, section: "fulldhcp"})
	}
	return extraSection{targets: targets, markdown: md.String()}, nil
}

// fullDHCPRun runs perfdhcp in namespace ns with extra arguments.
func (b *runner) fullDHCPRun(ctx context.Context, ns, server string, extra []string) (fullDHCPResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	args := append([]string{"netns", "exec", ns, mustLook("perfdhcp"), "-4", "-l", "eth0", "-R", strconv.Itoa(fullDHCPClients),
		"-b", "mac=02:00:00:00:00:00", "-W", "2000000", "-g", "single"}, extra...)
	out, err := exec.CommandContext(ctx, mustLook("ip"), args...).CombinedOutput()
	b.seq++
	os.WriteFile(filepath.Join(b.s.dir, fmt.Sprintf("perfdhcp-%03d-full-%s.txt", b.seq, server)), out, 0o644)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			return fullDHCPResult{}, fmt.Errorf("perfdhcp: %w\n%s", err, tail(string(out), 20))
		}
	}
	return parsePerfdhcpDORA(string(out))
}

// parsePerfdhcpDORA reads the DISCOVER-OFFER and REQUEST-ACK statistics
// and the rate of perfdhcp's final report.
func parsePerfdhcpDORA(out string) (fullDHCPResult, error) {
	var r fullDHCPResult
	i := -1
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		num := func(prefix string) int {
			f := strings.Fields(strings.TrimPrefix(line, prefix))
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.Atoi(f[0])
			return n
		}
		switch {
		case strings.HasPrefix(line, "***Statistics for: DISCOVER-OFFER"):
			i = 0
		case strings.HasPrefix(line, "***Statistics for: REQUEST-ACK"):
			i = 1
		case i >= 0 && strings.HasPrefix(line, "sent packets:"):
			r.sent[i] = num("sent packets:")
		case i >= 0 && strings.HasPrefix(line, "received packets:"):
			r.recv[i] = num("received packets:")
		case i >= 0 && strings.HasPrefix(line, "drops:"):
			r.drops[i] = num("drops:")
		case strings.HasPrefix(line, "Rate:"):
			fmt.Sscanf(strings.TrimPrefix(line, "Rate:"), "%f", &r.rate)
		}
	}
	if r.sent[0] == 0 {
		return r, fmt.Errorf("perfdhcp printed no DORA statistics:\n%s", tail(out, 30))
	}
	return r, nil
}
