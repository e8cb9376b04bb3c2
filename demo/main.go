// Command demo brings up a throwaway lab — a boot VLAN in a network
// namespace, dnsmasq as the site DHCP server, `moobi serve` as the proxy —
// builds a Debian 12 server image from Debian's packages (mmdebstrap, kept
// in the cache) with `moobi image build`, boots a rack of BIOS and UEFI VMs
// into it over BitTorrent, logs into each over SSH with the key hosts.yaml
// gives, prints each node's boot timeline as the appliance saw it and the
// appliance's upload next to the peers', and tears everything down. With
// --image busybox it boots a small busybox image instead (faster). Run as
// root (`make demo`).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"moobi/lab"
)

type node struct {
	name, mac string
	fw        lab.Firmware
}

func main() {
	bin := flag.String("moobi", "bin/moobi", "moobi binary")
	cache := flag.String("cache", ".cache/lab", "cache folder for the kernel and the node initramfs")
	src := flag.String("src", ".", "the moobi source tree (to build the node initramfs)")
	keep := flag.Bool("keep", false, "keep the lab's folder (logs, consoles) after teardown")
	kind := flag.String("image", "debian", "what the rack boots: debian (a Debian 12 server, logged into over SSH) or busybox (a 64 MiB toy image, faster)")
	flag.Parse()
	if *kind != "debian" && *kind != "busybox" {
		fmt.Fprintln(os.Stderr, "demo: --image must be debian or busybox")
		os.Exit(2)
	}
	if err := run(*bin, *cache, *src, *keep, *kind == "debian"); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(bin, cache, src string, keep, debian bool) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo builds network namespaces and VMs: run it as root")
	}
	bin, _ = filepath.Abs(bin)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	lab.CleanupStale(ctx)

	step("fetching the node kernel (Debian's cloud kernel, cached in %s)", cache)
	kernel, err := lab.Kernel(ctx, cache)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "moobi-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("lab folder kept at", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	modules, err := lab.KernelModulesDir(cache)
	if err != nil {
		return err
	}
	step("building the node initramfs (u-root; cached until its sources change)")
	src, _ = filepath.Abs(src)
	// One boot signing key, kept in the cache: the appliance signs boot
	// configs with it and the node initramfs trusts it.
	key, err := lab.SigningKey(cache)
	if err != nil {
		return err
	}
	initrd, _, err := lab.NodeInitrd(ctx, cache, bin, src, key)
	if err != nil {
		return err
	}
	image := filepath.Join(dir, "image.squashfs")
	var rootfs string
	if debian {
		step("building a Debian 12 server root filesystem with mmdebstrap (systemd, udev, openssh-server, Debian's cloud kernel; cached in %s)", cache)
		if rootfs, err = lab.DebianRootfs(ctx, cache); err != nil {
			return err
		}
	} else {
		step("building a 64 MiB squashfs image whose init says hello")
		if err := lab.BuildBootImage(image, 64); err != nil {
			return err
		}
	}
	sshKey := filepath.Join(dir, "id_ed25519")
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "operator@demo", "-f", sshKey).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(sshKey + ".pub")
	if err != nil {
		return err
	}
	rack := []node{
		{"rack1-node01", "52:54:00:de:00:01", lab.BIOS},
		{"rack1-node02", "52:54:00:de:00:02", lab.UEFI},
		{"rack1-node03", "52:54:00:de:00:03", lab.BIOS},
		{"rack1-node04", "52:54:00:de:00:04", lab.UEFI},
	}
	step("bringing up the lab: boot VLAN br0, dnsmasq as site DHCP (addresses only), moobi as proxy")
	l, err := lab.New(ctx, lab.Options{Dir: filepath.Join(dir, "lab")})
	if err != nil {
		return err
	}
	defer func() {
		step("tearing the lab down")
		l.Close()
	}()
	cfg := filepath.Join(dir, "hosts.yaml")
	var hosts strings.Builder
	for _, n := range rack {
		fmt.Fprintf(&hosts, "  %s:\n    mac: %s\n    profile: web\n", n.name, n.mac)
	}
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %s/data
  ipxe_dir: /usr/lib/ipxe
  node_initrd: %s
  signing_key: %s         # the node initramfs carries its public key
  seed_upload_mbit: 8     # the appliance's uplink is the rack's bottleneck
profiles:
  web:
    image: web
    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on
    authorized_keys: [%q]
hosts:
%s`, dir, initrd, key, strings.TrimSpace(string(pub)), hosts.String())), 0o644); err != nil {
		return err
	}
	var publish *exec.Cmd
	if debian {
		step("publishing the image: moobi image build %s", rootfs)
		// zstd level 3: a few seconds instead of minutes for a ~12% larger image.
		publish = exec.CommandContext(ctx, bin, "image", "build", "--config", cfg, "--name", "web", "--zstd-level", "3", rootfs)
	} else {
		step("publishing the image: moobi image add")
		publish = exec.CommandContext(ctx, bin, "image", "add", "--config", cfg, "--name", "web", "--kernel", kernel, "--rootfs", image, "--modules", modules)
	}
	if out, err := publish.CombinedOutput(); err != nil {
		return fmt.Errorf("publishing the image: %v\n%s", err, out)
	} else {
		fmt.Print(indent(lastLines(string(out), 6)))
	}
	app, err := l.StartAppliance(ctx, bin, cfg)
	if err != nil {
		return err
	}
	defer app.Stop()

	if err := app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool { return e.Msg == "seeding" }); err != nil {
		return err
	}
	step("powering on %d VMs (BIOS with iPXE ROM, UEFI with OVMF's own PXE); they fetch the image over BitTorrent", len(rack))
	start := time.Now()
	booted := make([]time.Duration, len(rack))
	var wg sync.WaitGroup
	errs := make([]error, len(rack))
	for i, n := range rack {
		mem := 768
		if debian {
			mem = 1024
		}
		vm, err := l.StartVM(ctx, lab.VMOptions{Name: n.name, MAC: n.mac, Firmware: n.fw, MemoryMB: mem})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, wcancel := context.WithTimeout(ctx, 12*time.Minute)
			defer wcancel()
			if !debian {
				if err := vm.WaitConsole(wctx, lab.ImageMarker+n.name); err != nil {
					errs[i] = fmt.Errorf("%s: %w", n.name, err)
					return
				}
				booted[i] = time.Since(start)
				fmt.Printf("  %-14s %-4s image init says: hello from %s  (%.1fs after power-on)\n", n.name, n.fw, n.name, booted[i].Seconds())
				return
			}
			st, err := waitServer(wctx, l, n.mac)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w\nconsole:\n%s", n.name, err, lab.Tail(vm.Console(), 30))
				return
			}
			booted[i] = time.Since(start)
			out, err := l.Command(wctx, "ssh", "-i", sshKey, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
				"-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "root@"+st.Address,
				`echo "$(hostname) $(systemctl is-system-running) $(. /etc/os-release; echo $PRETTY_NAME), kernel $(uname -r)"`).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("%s: ssh root@%s: %v: %s", n.name, st.Address, err, out)
				return
			}
			fmt.Printf("  %-14s %-4s %-14s running %.1fs after power-on; ssh root@%s: %s\n", n.name, n.fw, st.Address, booted[i].Seconds(), st.Address, strings.TrimSpace(string(out)))
		}()
	}
	wg.Wait()
	printTimelines(rack, app.Entries(), start, booted)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	step("all %d nodes booted in %.1fs", len(rack), time.Since(start).Seconds())
	n0, err := nodeStatus(ctx, l, rack[0].mac)
	if err != nil {
		return err
	}
	size := float64(n0.Total)
	metrics, _ := l.Command(ctx, "curl", "-s", "http://"+lab.ApplianceAddr+":8080/metrics").Output()
	up := metric(string(metrics), `moobi_swarm_uploaded_bytes_total{image="web",protocol="bittorrent"}`) +
		metric(string(metrics), `moobi_swarm_uploaded_bytes_total{image="web",protocol="http"}`)
	total := size * float64(len(rack))
	step("the rack received %.0f MB of image; the appliance uploaded %.0f MB (%.2f× one image), the nodes %.0f MB to each other",
		total/1e6, up/1e6, up/size, (total-up)/1e6)
	return nil
}

func metric(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// printTimelines shows, per node, when the appliance saw each boot step.
func printTimelines(rack []node, entries []lab.LogEntry, start time.Time, booted []time.Duration) {
	step("boot timelines, as the appliance saw them (seconds since power-on)")
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  node\tfirmware\tproxy DHCP\tTFTP iPXE\tiPXE script\tkernel\tfetching\tverified\trunning\timage init")
	for i, n := range rack {
		cols := map[string]string{}
		var client string
		for _, e := range entries {
			at := fmt.Sprintf("%.1f", e.Time.Sub(start).Seconds())
			switch {
			case e.Msg == "proxy DHCP reply" && e.MAC == n.mac && e.Firmware != "ipxe":
				setOnce(cols, "dhcp", at+" ("+e.BootFile+")")
			case e.Msg == "proxy DHCP reply" && e.MAC == n.mac && cols["dhcp"] == "":
				setOnce(cols, "dhcp", at+" (iPXE ROM)")
			case e.Msg == "http request" && e.MAC == n.mac && e.Status == 200:
				setOnce(cols, "script", at)
				client, _, _ = strings.Cut(e.Client, ":")
			}
		}
		for _, e := range entries {
			at := fmt.Sprintf("%.1f", e.Time.Sub(start).Seconds())
			ip, _, _ := strings.Cut(e.Client, ":")
			switch {
			case e.Msg == "TFTP transfer done" && client != "" && e.Client == client:
				setOnce(cols, "tftp", at)
			case e.Msg == "http request" && client != "" && ip == client && strings.HasSuffix(e.URI, "/kernel"):
				setOnce(cols, "kernel", at)
			case e.Msg == "node event" && e.MAC == n.mac && e.State != "":
				setOnce(cols, e.State, at)
			}
		}
		if booted[i] > 0 {
			cols["booted"] = fmt.Sprintf("%.1f", booted[i].Seconds())
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.name, n.fw, dash(cols["dhcp"]), dash(cols["tftp"]),
			dash(cols["script"]), dash(cols["kernel"]), dash(cols["fetching"]), dash(cols["verified"]), dash(cols["running"]), dash(cols["booted"]))
	}
	w.Flush()
}

func setOnce(m map[string]string, k, v string) {
	if m[k] == "" {
		m[k] = v
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

// serverState is what the demo reads of a node in /v1/nodes.
type serverState struct {
	State   string `json:"state"`
	Reason  string `json:"reason"`
	Address string `json:"address"`
	Total   int64  `json:"total"`
}

func nodeStatus(ctx context.Context, l *lab.Lab, mac string) (serverState, error) {
	var st serverState
	out, err := l.Command(ctx, "curl", "-sS", "--max-time", "10", "http://"+lab.ApplianceAddr+":8080/v1/nodes/"+mac).Output()
	if err != nil {
		return st, fmt.Errorf("GET /v1/nodes/%s: %w", mac, err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("GET /v1/nodes/%s: %w", mac, err)
	}
	return st, nil
}

// waitServer waits until the node reports running: its systemd reached
// its default target.
func waitServer(ctx context.Context, l *lab.Lab, mac string) (serverState, error) {
	for {
		st, err := nodeStatus(ctx, l, mac)
		if err == nil {
			switch st.State {
			case "running":
				return st, nil
			case "failed", "degraded":
				return st, fmt.Errorf("%s: %s", st.State, st.Reason)
			}
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("not running (state %q): %w", st.State, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
