package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"moobi/lab"
)

// TestHostileTraffic: while a host the inventory boots PXE-boots, another
// host on the boot network sprays random bytes at every port of the
// appliance (proxy DHCP 67 and 4011, TFTP 69, HTTP, BitTorrent) and floods
// it with PXE DISCOVERs from random MACs. The appliance keeps answering:
// the known host boots, the garbage and the storm are counted, its memory
// stays bounded, and it still answers HTTP afterwards.
func TestHostileTraffic(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := moobiBinary(t)
	kernel, err := lab.Kernel(ctx, lab.TestCacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	l := lab.NewForTest(t, ctx)
	marker := "MOOBI-E2E-" + randomHex(6)
	initrd := filepath.Join(l.Dir(), "marker.cpio.gz")
	if err := lab.BuildInitramfs(initrd, lab.MarkerInit(marker), nil); err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:e2:f0:01"
	cfg := filepath.Join(l.Dir(), "hosts.yaml")
	writeFile(t, cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %[1]s/data
  ipxe_dir: /usr/lib/ipxe
profiles:
  marker:
    kernel: %[2]s
    initrd: [%[3]s]
    cmdline: console=ttyS0 panic=-1
hosts:
  bios-node:
    mac: %[4]s
    profile: marker
`, l.Dir(), kernel, initrd, mac))
	app := startAppliance(t, ctx, l, bin, cfg)
	ns, err := l.AddHost(ctx, "hostile")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "addr", "add", "10.99.0.66/24", "dev", "eth0")

	// The attacker: this test binary, re-run in the hostile namespace.
	const storm = 60 * time.Second
	sprayCtx, stopSpray := context.WithTimeout(ctx, storm+time.Minute) // it stops by itself after storm
	defer stopSpray()
	spray := exec.CommandContext(sprayCtx, "ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperSpray$", "-test.v")
	spray.Env = append(os.Environ(), "MOOBI_SPRAY_TARGET="+lab.ApplianceAddr, "MOOBI_SPRAY_FOR="+storm.String())
	sprayLog, err := os.Create(filepath.Join(l.Dir(), "spray.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer sprayLog.Close()
	spray.Stdout, spray.Stderr = sprayLog, sprayLog
	sprayOut := func() string { b, _ := os.ReadFile(sprayLog.Name()); return string(b) }
	if err := spray.Start(); err != nil {
		t.Fatal(err)
	}
	sprayDone := make(chan error, 1)
	go func() { sprayDone <- spray.Wait() }()

	// Let the storm build up (its counter moves), then boot the known host.
	eventually(t, ctx, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
		m, _ := curl(ctx, l, "http://"+lab.ApplianceAddr+":8080/metrics")
		n := metricValue(m, `moobi_dhcp_ignored_total{reason="unknown-mac"}`)
		return n >= 1000, fmt.Sprintf("the storm did not reach the appliance: %.0f unknown MACs ignored, want 1,000\nspray output:\n%s", n, sprayOut())
	})
	start := time.Now()
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: "bios", MAC: mac, Firmware: lab.BIOS})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer wcancel()
	if err := vm.WaitConsole(wctx, marker); err != nil {
		t.Fatalf("the known host did not boot during the storm: %v\n%s", err, lab.Tail(vm.Console(), 20))
	}
	t.Logf("known host booted during the storm in %.1fs", time.Since(start).Seconds())

	if err := <-sprayDone; err != nil {
		t.Fatalf("spray: %v\n%s", err, sprayOut())
	}
	t.Logf("spray: %s", lastLine(sprayOut(), "sent"))
	health, err := curl(ctx, l, "http://"+lab.ApplianceAddr+":8080/healthz")
	if err != nil || strings.TrimSpace(health) != "ok" {
		t.Fatalf("appliance does not answer after the storm: %q, %v", health, err)
	}
	m, err := curl(ctx, l, "http://"+lab.ApplianceAddr+":8080/metrics")
	if err != nil {
		t.Fatal(err)
	}
	unknown := metricValue(m, `moobi_dhcp_ignored_total{reason="unknown-mac"}`)
	malformed := metricValue(m, `moobi_dhcp_malformed_total{port="67"}`) + metricValue(m, `moobi_dhcp_malformed_total{port="4011"}`)
	rss := metricValue(m, "process_resident_memory_bytes")
	t.Logf("appliance: %.0f DISCOVERs from unknown MACs ignored, %.0f malformed DHCP packets, RSS %.1f MiB", unknown, malformed, rss/(1<<20))
	if unknown < 10000 || malformed < 1000 {
		t.Errorf("the appliance counted %.0f unknown-MAC DISCOVERs and %.0f malformed packets: the storm did not reach it", unknown, malformed)
	}
	if rss <= 0 || rss > 150<<20 {
		t.Errorf("appliance RSS %.1f MiB after the storm, want at most 150 MiB", rss/(1<<20))
	}
	if err := app.Stop(); err != nil {
		t.Errorf("appliance did not stop cleanly after the storm: %v", err)
	}
}

func lastLine(s, prefix string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], prefix) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

// TestHelperSpray is the attacker of TestHostileTraffic, run by it in
// another network namespace; it does nothing otherwise. For
// MOOBI_SPRAY_FOR it sends, to MOOBI_SPRAY_TARGET: PXE DISCOVERs from
// random MACs, random datagrams to UDP 67, 4011
// and 69, and random bytes over TCP to the HTTP and BitTorrent ports.
func TestHelperSpray(t *testing.T) {
	target := os.Getenv("MOOBI_SPRAY_TARGET")
	if target == "" {
		t.Skip("helper for TestHostileTraffic")
	}
	d, err := time.ParseDuration(os.Getenv("MOOBI_SPRAY_FOR"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	counts := map[string]int{}
	add := func(k string, n int) {
		mu.Lock()
		counts[k] += n
		mu.Unlock()
	}
	sprayGarbage(ctx, t, target, add)
	fmt.Printf("sent %d DISCOVERs, %d/%d/%d random datagrams to 67/4011/69, %d/%d garbage TCP connections to 8080/6881\n",
		counts["discover"], counts["udp/67"], counts["udp/4011"], counts["udp/69"], counts["tcp/8080"], counts["tcp/6881"])
}

// sprayGarbage sends to target until ctx ends, counting what it sent with
// add: PXE DISCOVERs from random MACs ("discover"), random datagrams to UDP
// 67, 4011 and 69 ("udp/PORT") and random bytes over TCP to the HTTP and
// BitTorrent ports ("tcp/PORT").
func sprayGarbage(ctx context.Context, t *testing.T, target string, add func(string, int)) {
	var wg sync.WaitGroup
	// DHCP storm: about 2,000 DISCOVERs per second from random MACs.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 68})
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		// Unicast to the appliance, as a relay would send: a broadcast
		// storm would reach the site DHCP server too, which is not under
		// test. The proxy handles both alike.
		dst := &net.UDPAddr{IP: net.ParseIP(target), Port: 67}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			<-tick.C
			for range 2 {
				mac := make(net.HardwareAddr, 6)
				rand.Read(mac)
				mac[0] = mac[0]&0xfe | 0x02 // unicast, locally administered
				m, _ := dhcpv4.NewDiscovery(mac, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")))
				if _, err := c.WriteTo(m.ToBytes(), dst); err == nil {
					add("discover", 1)
				}
			}
		}
	}()
	// Random datagrams.
	for _, port := range []int{67, 4011, 69} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := &net.UDPAddr{IP: net.ParseIP(target), Port: port}
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				<-tick.C
				c, err := net.DialUDP("udp4", nil, dst)
				if err != nil {
					continue
				}
				n, _ := rand.Int(rand.Reader, big.NewInt(1500))
				b := make([]byte, n.Int64())
				rand.Read(b)
				if _, err := c.Write(b); err == nil {
					add("udp/"+strconv.Itoa(port), 1)
				}
				c.Close()
			}
		}()
	}
	// Random bytes over TCP.
	for _, port := range []int{8080, 6881} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(target, strconv.Itoa(port)), time.Second)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				n, _ := rand.Int(rand.Reader, big.NewInt(8192))
				b := make([]byte, n.Int64()+1)
				rand.Read(b)
				c.SetDeadline(time.Now().Add(time.Second))
				c.Write(b)
				c.Close()
				add("tcp/"+strconv.Itoa(port), 1)
			}
		}()
	}
	wg.Wait()
}
