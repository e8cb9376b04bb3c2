package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"moobi/lab"
)

// TestHostileRackBoot: three VMs (two BIOS, one UEFI) boot a Moobi image
// while a host on the boot network runs every attack at once: it fetches
// the nodes' boot scripts again and again and uses the tokens it gets (its
// own, faster than a node may ask; another node's; forged ones), asks for
// their boot configs and posts their events without a token, floods the
// tracker from one address (many ports, seeders and leechers), floods TFTP
// with read requests it never acknowledges, and sprays PXE DISCOVERs from
// random MACs and garbage at the DHCP, TFTP, HTTP and BitTorrent ports.
// Meanwhile a rogue server on the nodes' path (the test redirects the
// nodes' HTTP connections to it, as ARP spoofing would) forwards iPXE's
// requests and answers each node's boot config request with a config the
// appliance signed for the previous version. Every node refuses the replay, retries, and runs
// the current version; the appliance counted the refusals, the attacker
// got no token-protected answer, not even with a node's own token read off
// its kernel command line, and the appliance's memory stayed bounded.
func TestHostileRackBoot(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", "iptables", lab.OVMFCode)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rack := []rackNode{
		{"storm-node01", "52:54:00:e3:00:01", lab.BIOS},
		{"storm-node02", "52:54:00:e3:00:02", lab.BIOS},
		{"storm-node03", "52:54:00:e3:00:03", lab.UEFI},
	}
	// no_timer_check: under TCG on a loaded machine the kernel's IO-APIC
	// timer check can fail and panic the boot, a fault of the lab.
	r := newVMRack(t, ctx, vmRackOptions{hosts: rack, imageMiB: 8, cmdline: "moobi.reboot_after=10m no_timer_check"})
	l := r.l
	ns, err := l.AddHost(ctx, "hostile")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "addr", "add", "10.99.0.66/24", "dev", "eth0")
	hostileCurl := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "curl", "-sS", "--max-time", "10"}, args...)...).Output()
		return string(out), err
	}

	// The attacker fetches each node's script and, with the token it got,
	// the config the appliance signs for the current version: its replay.
	captures := filepath.Join(l.Dir(), "captured")
	if err := os.Mkdir(captures, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range rack {
		script, err := hostileCurl(r.url("/boot/" + n.mac + ".ipxe"))
		m := tokenRE.FindStringSubmatch(script)
		if err != nil || m == nil {
			t.Fatalf("the attacker's script fetch for %s: %v\n%s", n.mac, err, script)
		}
		base := filepath.Join(captures, n.mac)
		if _, err := hostileCurl("-f", "-D", base+".head", "-o", base+".body", "-H", "Moobi-Boot: "+m[1],
			"-H", "Moobi-Nonce: "+randomHex(16), r.url("/v1/nodes/"+n.mac+"/boot")); err != nil {
			t.Fatalf("the attacker's capture of %s's boot config: %v", n.mac, err)
		}
	}
	// A new version: the captured configs are of an older one.
	image2 := filepath.Join(l.Dir(), "image2.squashfs")
	if err := lab.BuildBootImage(image2, 8); err != nil {
		t.Fatal(err)
	}
	v2 := r.publish(t, ctx, image2)
	if err := r.app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool { return e.Msg == "seeding" && e.Version == v2 }); err != nil {
		t.Fatal(err)
	}
	ih2 := (&imageLab{l: l}).manifest(t, v2).InfoHash

	// The rogue server, on the nodes' path to the appliance.
	rogue := startHelper(t, ctx, l.ApplianceNS(), "TestHelperRogue", filepath.Join(l.Dir(), "rogue.log"),
		"MOOBI_ROGUE_DIR="+captures, "MOOBI_ROGUE_LISTEN="+lab.ApplianceAddr+":18080",
		"MOOBI_ROGUE_UPSTREAM=http://"+lab.ApplianceAddr+":8080")
	if err := rogue.waitOutput(ctx, "rogue listening", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The attacker.
	var macs []string
	for _, n := range rack {
		macs = append(macs, n.mac)
	}
	stop := filepath.Join(l.Dir(), "storm.stop")
	storm := startHelper(t, ctx, ns, "TestHelperRackStorm", filepath.Join(l.Dir(), "storm.log"),
		"MOOBI_STORM_TARGET="+lab.ApplianceAddr, "MOOBI_STORM_MACS="+strings.Join(macs, ","),
		"MOOBI_STORM_INFOHASH="+ih2, "MOOBI_STORM_STOP="+stop, "MOOBI_STORM_MAX=6m")
	eventually(t, ctx, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
		m, _ := curl(ctx, l, r.url("/metrics"))
		n := metricValue(m, `moobi_dhcp_ignored_total{reason="unknown-mac"}`)
		return n >= 1000, fmt.Sprintf("the storm did not reach the appliance: %.0f unknown MACs ignored, want 1,000\n%s", n, storm.output())
	})

	// The node's connections to the appliance's HTTP port go to the rogue
	// server, which forwards iPXE's requests and drops the redirection
	// once it has replayed the config.
	for _, n := range rack {
		run(t, ctx, "ip", append([]string{"netns", "exec", l.ApplianceNS(), "iptables"}, rogueRule("-A", n.mac)...)...)
	}
	start := time.Now()
	vms := map[string]*lab.VM{}
	var g errgroup.Group
	for _, n := range rack {
		vm, err := l.StartVM(ctx, lab.VMOptions{Name: n.name, MAC: n.mac, Firmware: n.fw, MemoryMB: 512})
		if err != nil {
			t.Fatal(err)
		}
		vms[n.mac] = vm
		g.Go(func() error {
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
			defer wcancel()
			if err := vm.WaitConsole(wctx, lab.ImageMarker+n.name); err != nil {
				return fmt.Errorf("%s (%s) did not boot during the storm: %w\n%s", n.name, n.fw, err, lab.Tail(vm.Console(), 40))
			}
			t.Logf("%s (%s) is running its image, %.1fs after power-on", n.name, n.fw, time.Since(start).Seconds())
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("%v\nstorm: %s", err, lastLine(storm.output(), "storm"))
	}
	t.Logf("%d nodes booted during the storm in %.1fs", len(rack), time.Since(start).Seconds())

	// Each node refused the replayed config, and runs the current version.
	nodes := getNodes(t, ctx, r)
	for _, n := range rack {
		if !strings.Contains(rogue.output(), "replayed "+n.mac) {
			t.Errorf("%s: the rogue server never answered its boot config request\n%s", n.name, rogue.output())
		}
		if !regexp.MustCompile(`MOOBI: boot failed: boot config from \S+ answers nonce "[0-9a-f]+", not this request's`).MatchString(vms[n.mac].Console()) {
			t.Errorf("%s: no refusal of the replayed config on its console:\n%s", n.name, lab.Tail(vms[n.mac].Console(), 40))
		}
		// Its own report; the attacker's script fetches, which go on,
		// leave it running at its own address (checked below).
		ran := false
		for _, e := range r.app.Entries() {
			ran = ran || e.Msg == "node event" && e.MAC == n.mac && e.State == "running" && e.Version == v2
		}
		if !ran {
			t.Errorf("%s: never reported running on %s (in /v1/nodes: %s, version %q)", n.name, v2, nodes[n.mac].State, nodes[n.mac].Version)
		}
	}
	if t.Failed() {
		t.Logf("rogue server:\n%s", lab.Tail(rogue.output(), 20))
	}
	// During the storm, which fetches every node's script from the
	// attacker's address, /v1/nodes shows each node running v2 at the
	// address the site DHCP server leased it (not the attacker's).
	leases := map[string]string{}
	for _, n := range rack {
		if leases[n.mac], err = l.WaitSiteLease(ctx, n.mac); err != nil {
			t.Fatal(err)
		}
		checkKept(t, ctx, r, n, leases[n.mac], v2)
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := storm.wait(); err != nil {
		t.Fatalf("storm: %v\n%s", err, storm.output())
	}
	// The attacker with a node's own token, read off its kernel command
	// line (as from a mirror port): refused from its address. (Asked once
	// the storm is over: during it, the attacker's own garbage holds the
	// connections its address may open.)
	stolen := 0
	for _, n := range rack {
		m := tokenRE.FindAllStringSubmatch(vms[n.mac].Console(), -1)
		if m == nil {
			t.Errorf("%s: no %s= on its console", n.name, "moobi.boot")
			continue
		}
		tok := m[len(m)-1][1]
		for _, args := range [][]string{
			{"-H", "Moobi-Nonce: " + randomHex(16), r.url("/v1/nodes/" + n.mac + "/boot")},
			{"-X", "POST", "-d", `{"state":"failed","reason":"taken over"}`, r.url("/v1/nodes/" + n.mac + "/events")},
		} {
			code, err := hostileCurl(append([]string{"-o", "/dev/null", "-w", "%{http_code}", "-H", "Moobi-Boot: " + tok}, args...)...)
			if err != nil || code != "403" {
				t.Errorf("%s: the attacker with the node's token got %q (%v), want 403", n.name, code, err)
			}
			stolen++
		}
	}

	// Once the storm is over: a script fetch and a proxy DHCP request
	// naming each node, from the attacker, change nothing but its events.
	// (The storm used up the attacker's script allowance: 429 asks it to
	// come back in a second.)
	for _, n := range rack {
		eventually(t, ctx, 20*time.Second, time.Second, func() (bool, string) {
			code, err := hostileCurl("-o", "/dev/null", "-w", "%{http_code}", r.url("/boot/"+n.mac+".ipxe"))
			return err == nil && code == "200", fmt.Sprintf("%s: the attacker's script fetch got %q (%v), want 200", n.name, code, err)
		})
		if _, err := proxyDHCPProbe(ctx, ns, n.mac); err != nil {
			t.Errorf("%s: the attacker's proxy DHCP request: %v", n.name, err)
		}
		checkKept(t, ctx, r, n, leases[n.mac], v2, `^iPXE fetched its boot script from 10\.99\.0\.66 \(unauthenticated; state kept\)$`,
			`^proxy DHCP: \S+ \(unauthenticated; state kept\)$`)
	}

	summary := lastLine(storm.output(), "storm:")
	t.Logf("%s", summary)
	var s stormCounts
	if _, err := fmt.Sscanf(summary[strings.Index(summary, "storm:"):], stormFormat, &s.scripts, &s.scripts429, &s.ownConfigs, &s.ownConfigs429,
		&s.refused, &s.leaks, &s.announces, &s.tftp, &s.discovers, &s.garbage); err != nil {
		t.Fatalf("storm summary %q: %v", summary, err)
	}
	// The attacker's own tokens are limited from its address; the nodes,
	// which booted meanwhile, were not (the limit counts per address).
	if s.ownConfigs429 == 0 {
		t.Errorf("the attacker asked for %d boot configs with its own tokens, none limited (429)", s.ownConfigs)
	}
	if s.leaks != 0 {
		t.Errorf("the attacker got %d answers other than 403 to requests without a valid token of its own", s.leaks)
	}
	m, err := curl(ctx, l, r.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	refusedConfig := metricValue(m, `moobi_http_requests_total{code="403",route="GET /v1/nodes/{mac}/boot"}`)
	refusedEvents := metricValue(m, `moobi_http_requests_total{code="403",route="POST /v1/nodes/{mac}/events"}`)
	limited := metricValue(m, `moobi_http_requests_total{code="429",route="GET /boot/{script}"}`)
	busy := metricValue(m, `moobi_tftp_transfers_total{result="busy"}`)
	unknown := metricValue(m, `moobi_dhcp_ignored_total{reason="unknown-mac"}`)
	malformed := max(0, metricValue(m, `moobi_dhcp_malformed_total{port="67"}`)) + max(0, metricValue(m, `moobi_dhcp_malformed_total{port="4011"}`))
	seeders, leechers := metricValue(m, `moobi_swarm_peers{image="web",role="seeder"}`), metricValue(m, `moobi_swarm_peers{image="web",role="leecher"}`)
	if seeders < 0 || leechers < 0 {
		t.Errorf("/metrics has no moobi_swarm_peers series for image web (seeders %v, leechers %v): the tracker check below would test nothing", seeders, leechers)
	}
	peers := max(0, seeders) + max(0, leechers)
	rss := metricValue(m, "process_resident_memory_bytes")
	t.Logf("appliance: %.0f+%.0f token refusals (boot config, events), %.0f script fetches over the rate, %.0f TFTP requests dropped busy, %.0f unknown-MAC DISCOVERs, %.0f malformed DHCP packets, %.0f tracker peers of image web, RSS %.1f MiB",
		refusedConfig, refusedEvents, limited, busy, unknown, malformed, peers, rss/(1<<20))
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"403s for boot configs and events", refusedConfig + refusedEvents, float64(s.refused + stolen)},
		{"429s for boot scripts", limited, float64(s.scripts429)},
		{"TFTP requests dropped busy", busy, 1},
		{"unknown-MAC DISCOVERs ignored", unknown, 10000},
		{"malformed DHCP packets", malformed, 100},
	} {
		if c.got < c.want || c.want <= 0 {
			t.Errorf("the appliance counted %.0f %s, want at least %.0f", c.got, c.what, c.want)
		}
	}
	// The tracker: the attacker announced thousands of ports from one
	// address, and holds at most 4 peers of each version; the 3 nodes
	// (seeding both versions' pieces at most) are the rest.
	if s.announces < 1000 || peers > 4+float64(2*len(rack)) {
		t.Errorf("tracker: %d announces from one address, %.0f peers of image web held, want at most %d", s.announces, peers, 4+2*len(rack))
	}
	if rss <= 0 || rss > 150<<20 {
		t.Errorf("appliance RSS %.1f MiB after the storm, want at most 150 MiB", rss/(1<<20))
	}
}

// checkKept checks that /v1/nodes/MAC shows node n running version at
// address, with events in state running matching each of notes (regular
// expressions): the attacker's observations.
func checkKept(t *testing.T, ctx context.Context, r *vmRack, n rackNode, address, version string, notes ...string) {
	t.Helper()
	out, err := curl(ctx, r.l, r.url("/v1/nodes/"+n.mac))
	var v nodeView
	if err == nil {
		err = json.Unmarshal([]byte(out), &v)
	}
	if err != nil {
		t.Errorf("%s: GET /v1/nodes/%s: %v: %s", n.name, n.mac, err, out)
		return
	}
	if v.State != "running" || v.Address != address || v.Version != version {
		t.Errorf("%s: /v1/nodes shows it %s at %s, version %q (last event %q); want running at %s (its lease), %s", n.name, v.State, v.Address, v.Version, v.LastEvent, address, version)
	}
	for _, note := range notes {
		found := false
		for _, e := range v.Events {
			found = found || e.State == "running" && regexp.MustCompile(note).MatchString(e.Message)
		}
		if !found {
			t.Errorf("%s: no event %q in state running; events: %+v", n.name, note, v.Events)
		}
	}
}

// tokenRE finds the boot token on a kernel command line or in a script.
var tokenRE = regexp.MustCompile(`moobi\.boot=(\S+)`)

// rogueRule is the iptables rule (op -A or -D) that sends mac's new
// connections to the appliance's HTTP port to port 18080.
func rogueRule(op, mac string) []string {
	return []string{"-t", "nat", op, "PREROUTING", "-i", lab.BridgeName, "-m", "mac", "--mac-source", mac,
		"-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "18080"}
}

// helper is this test binary run as an attacker in a network namespace.
type helper struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func startHelper(t *testing.T, ctx context.Context, ns, name, log string, env ...string) *helper {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+name+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, log: log, done: make(chan error, 1)}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			cmd.Process.Kill()
			<-h.done
		}
	})
	return h
}

func (h *helper) output() string { b, _ := os.ReadFile(h.log); return string(b) }

// wait waits for the helper to end, and returns its error.
func (h *helper) wait() error {
	err := <-h.done
	h.done <- err // for the cleanup
	return err
}

// waitOutput waits until the helper printed s.
func (h *helper) waitOutput(ctx context.Context, s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(h.output(), s) {
		select {
		case err := <-h.done:
			h.done <- err
			return fmt.Errorf("helper ended (%v) before printing %q:\n%s", err, s, h.output())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("helper did not print %q within %v:\n%s", s, timeout, h.output())
		}
	}
	return nil
}

// stormCounts is what TestHelperRackStorm did, from its last line.
type stormCounts struct {
	scripts, scripts429, ownConfigs, ownConfigs429, refused, leaks, announces, tftp, discovers, garbage int
}

const stormFormat = "storm: %d script fetches (%d 429), %d boot configs with its own tokens (%d 429), %d requests without a valid token (%d not 403), %d announces, %d TFTP requests, %d DISCOVERs, %d garbage packets"
