package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"moobi/lab"
)

// fullDHCPConfig is a full-mode appliance section (subnet 10.99.0.0/24,
// pool 10.99.0.20-10.99.0.250) for the lab.
const fullDHCPConfig = `  dhcp:
    mode: full
    subnet: 10.99.0.0/24
    range: 10.99.0.20-10.99.0.250
    router: 10.99.0.1
    dns: [10.99.0.1]
    domain: lab.test
    lease_time: 1h
`

// TestFullDHCPClients: on a bare VLAN (no site DHCP server) the appliance
// in full mode gives ISC dhclient a host's static address and busybox
// udhcpc a pool address, and answers a few hundred DORA exchanges of
// Kea's perfdhcp without a drop. Beside a DHCP server (the default lab's
// dnsmasq), full mode refuses to start and says to use proxy mode.
func TestFullDHCPClients(t *testing.T) {
	lab.RequireRoot(t, "dhclient", "perfdhcp")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	bin := moobiBinary(t)
	l := lab.NewForTestWith(t, ctx, lab.Options{NoSiteDHCP: true})
	const staticMAC, staticIP = "52:54:00:fd:00:01", "10.99.0.10"
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	writeFile(t, cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %[1]s/data
  ipxe_dir: /usr/lib/ipxe
%[2]sprofiles:
  rescue:
    kernel: %[3]s
hosts:
  fixed:
    mac: %[4]s
    ip: %[5]s
    profile: rescue
`, l.Dir(), fullDHCPConfig, bin, staticMAC, staticIP))
	app := startAppliance(t, ctx, l, bin, cfg)

	// ISC dhclient with the static host's MAC.
	ns, err := l.AddHost(ctx, "dhclient")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "link", "set", "eth0", "address", staticMAC)
	if got := dhclientLease(t, ctx, l, ns); got != staticIP {
		t.Errorf("dhclient got %q, want the host's static %s", got, staticIP)
	}

	// A machine squatting on the pool's first address without a lease:
	// the ping before an offer finds it, and the address is skipped.
	squat, err := l.AddHost(ctx, "squat")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", squat, "addr", "add", "10.99.0.20/24", "dev", "eth0")

	// busybox udhcpc, unknown to the inventory: a pool address.
	ns2, err := l.AddHost(ctx, "udhcpc")
	if err != nil {
		t.Fatal(err)
	}
	uctx, ucancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := lab.NetnsCommand(uctx, ns2, lab.BusyboxPath, "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-s", "/bin/true").CombinedOutput()
	ucancel()
	m := regexp.MustCompile(`lease of (\S+) obtained`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	if ip := string(m[1]); !inLabPool(ip) || ip == "10.99.0.20" {
		t.Errorf("udhcpc got %s, want a free address of the pool", ip)
	}
	inUse := false
	for _, e := range app.Entries() {
		if e.Msg == "DHCP address in use by a host without a lease: kept out of the pool" && e.Addr == "10.99.0.20" {
			inUse = true
		}
	}
	if !inUse {
		t.Error("the squatted address was not found in use by the probe")
	}

	// perfdhcp: full DORA exchanges from 200 simulated clients.
	res := perfdhcpDORA(t, ctx, l, 100, 400, 200)
	t.Logf("perfdhcp: %+v", res)
	if res.sent[0] < 400 || res.sent[1] < 350 || res.drops[0] != 0 || res.drops[1] != 0 || res.recv[1] != res.sent[1] {
		t.Errorf("perfdhcp: DISCOVER-OFFER sent %d received %d dropped %d; REQUEST-ACK sent %d received %d dropped %d: want every exchange completed",
			res.sent[0], res.recv[0], res.drops[0], res.sent[1], res.recv[1], res.drops[1])
	}
	leases, err := os.ReadFile(filepath.Join(l.Dir(), "data", "state", "dhcp-leases.json"))
	if err != nil || strings.Count(string(leases), `"mac"`) < 150 {
		t.Errorf("lease file after perfdhcp: %v, %d leases", err, strings.Count(string(leases), `"mac"`))
	}
	if err := app.Stop(); err != nil {
		t.Error(err)
	}

	// Beside a DHCP server: full mode refuses to start.
	site := lab.NewForTest(t, ctx)
	cfg2 := filepath.Join(site.Dir(), "hosts.yaml")
	writeFile(t, cfg2, fmt.Sprintf("appliance:\n  interface: br0\n  http_port: 8080\n  data_dir: %s/data\n  ipxe_dir: /usr/lib/ipxe\n%s", site.Dir(), fullDHCPConfig))
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	defer scancel()
	out, err = site.Command(sctx, bin, "serve", "--config", cfg2).CombinedOutput()
	if err == nil || sctx.Err() != nil {
		t.Fatalf("moobi serve in full mode beside dnsmasq: %v (want a refusal)\n%s", err, lab.Tail(string(out), 20))
	}
	t.Logf("full mode beside dnsmasq: %s", lab.Tail(string(out), 1))
	for _, want := range []string{"another DHCP server answers", lab.SiteAddr, "proxy"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("refusal does not say %q:\n%s", want, lab.Tail(string(out), 20))
		}
	}
	t.Logf("TestFullDHCPClients took %.1fs", time.Since(start).Seconds())
}

func inLabPool(ip string) bool {
	f := strings.Split(ip, ".")
	if len(f) != 4 || strings.Join(f[:3], ".") != "10.99.0" {
		return false
	}
	n, err := strconv.Atoi(f[3])
	return err == nil && n >= 20 && n <= 250
}

// dhclientLease runs ISC dhclient once in namespace ns (without touching
// any interface or file outside the test: its script is /bin/true) and
// returns the address it was leased.
func dhclientLease(t *testing.T, ctx context.Context, l *lab.Lab, ns string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "dhclient.conf")
	writeFile(t, conf, "timeout 20;\nretry 1;\n")
	leaseFile := filepath.Join(dir, "dhclient.leases")
	dctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	logPath := filepath.Join(dir, "dhclient.log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := lab.NetnsCommand(dctx, ns, "dhclient", "-4", "-1", "-v", "-d", "-cf", conf, "-lf", leaseFile,
		"-pf", filepath.Join(dir, "dhclient.pid"), "-sf", "/bin/true", "eth0")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	// -d keeps dhclient in the foreground: once its lease file says what
	// it was leased, it is ended.
	var m [][]byte
	eventually(t, dctx, 35*time.Second, 100*time.Millisecond, func() (bool, string) {
		b, _ := os.ReadFile(leaseFile)
		m = regexp.MustCompile(`fixed-address (\S+);`).FindSubmatch(b)
		if m != nil {
			return true, ""
		}
		log, _ := os.ReadFile(logPath)
		return false, "dhclient got no lease:\n" + string(log)
	})
	return string(m[1])
}

type perfdhcpResult struct {
	sent, recv, drops [2]int // DISCOVER-OFFER, REQUEST-ACK
	rate              float64
}

// perfdhcpDORA runs Kea's perfdhcp from a lab host: n full DORA exchanges
// at rate per second from clients simulated MACs.
func perfdhcpDORA(t *testing.T, ctx context.Context, l *lab.Lab, rate, n, clients int) perfdhcpResult {
	t.Helper()
	ns, err := l.AddHost(ctx, "perf")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "addr", "add", "10.99.0.5/24", "dev", "eth0")
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := lab.NetnsCommand(pctx, ns, "perfdhcp", "-4", "-l", "eth0", "-r", strconv.Itoa(rate), "-n", strconv.Itoa(n),
		"-R", strconv.Itoa(clients), "-b", "mac=02:00:00:00:00:00", "-W", "2000000", "-g", "single").CombinedOutput()
	if err != nil {
		t.Logf("perfdhcp: %v", err) // exit 3: some exchange failed; the counts say which
	}
	return parsePerfdhcpDORA(t, string(out))
}

func parsePerfdhcpDORA(t *testing.T, out string) perfdhcpResult {
	t.Helper()
	var r perfdhcpResult
	i := -1
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "***Statistics for: DISCOVER-OFFER"):
			i = 0
		case strings.HasPrefix(line, "***Statistics for: REQUEST-ACK"):
			i = 1
		case i >= 0 && strings.HasPrefix(line, "sent packets:"):
			r.sent[i], _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "sent packets:")))
		case i >= 0 && strings.HasPrefix(line, "received packets:"):
			r.recv[i], _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "received packets:")))
		case i >= 0 && strings.HasPrefix(line, "drops:"):
			r.drops[i], _ = strconv.Atoi(strings.Fields(strings.TrimPrefix(line, "drops:"))[0])
		case strings.HasPrefix(line, "Rate:"):
			fmt.Sscanf(strings.TrimPrefix(line, "Rate:"), "%f", &r.rate)
		}
	}
	if r.sent[0] == 0 {
		t.Fatalf("perfdhcp printed no statistics:\n%s", lab.Tail(out, 40))
	}
	return r
}
