package main

// The boot section: one VM (qemu TCG, SeaBIOS with its iPXE ROM or OVMF's
// own PXE) from power-on to a running system, booted by moobi (an image
// profile: node initramfs, BitTorrent, switch_root), and the same VM booted
// the way dnsmasq users do it (dnsmasq as proxy DHCP and TFTP server for the
// iPXE binary, iPXE fetching kernel and an initramfs that carries the same
// image from nginx). With --boot-image debian the image is the Debian 12
// server image and the reference initramfs fetches it (bootdebian.go). Each
// boot gets a fresh lab (lab.New), closed on error and when ctx ends.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"moobi/lab"
)

// bootFlags configure the boot section.
type bootFlags struct {
	firmware   string
	imageMiB   int
	repeat     int
	cache      string
	src        string
	initrdBase string
	timeout    time.Duration
	servers    string
	image      string
}

func registerBootFlags(fs *flag.FlagSet) *bootFlags {
	f := &bootFlags{}
	fs.StringVar(&f.firmware, "boot-firmware", "bios", "boot: the VM's firmware: bios (SeaBIOS, iPXE ROM), uefi (OVMF's own PXE) or both")
	fs.IntVar(&f.imageMiB, "boot-image-mib", 64, "boot: MiB of random data in the image (moobi fetches it over BitTorrent; the reference initramfs carries it)")
	fs.IntVar(&f.repeat, "boot-repeat", 1, "boot: boots per firmware and server, alternating servers; the median boot is reported")
	fs.StringVar(&f.cache, "boot-cache", ".cache/lab", "boot: cache folder for the node kernel (Debian's cloud kernel) and signing key")
	fs.StringVar(&f.src, "boot-src", ".", "boot: the moobi source tree, to build the node initramfs if there is no --boot-initrd-base")
	fs.StringVar(&f.initrdBase, "boot-initrd-base", "", "boot: the node initramfs without key (`make initrd`); default node-initrd.cpio.gz beside --moobi, else built from --boot-src")
	fs.DurationVar(&f.timeout, "boot-timeout", 10*time.Minute, "boot: give up on one boot after this long")
	fs.StringVar(&f.servers, "boot-servers", "moobi,dnsmasq", "boot: which boots to run: moobi, dnsmasq (dnsmasq + nginx) or both")
	fs.StringVar(&f.image, "boot-image", "random", "boot: the image: random (--boot-image-mib of random data; the reference initramfs carries it) or debian (the Debian 12 server image by `moobi image build`; the reference initramfs fetches its squashfs from nginx and switch_roots into it); both boots end on systemd's console line `Reached target getty.target` with debian")
	return f
}

const (
	bootHTTPPort = 8080
	bootMarker   = "MOOBI-BENCH-INITRAMFS: up"
	bootScript   = "boot.ipxe"
	bootKernel   = "vmlinuz"
	bootInitrd   = "initrd.cpio.gz"
	bootCmdline  = "console=ttyS0 panic=-1 random.trust_cpu=on"
)

// bootAssets are built once per bench run and shared by all boots.
type bootAssets struct {
	kernel, modules string
	key, nodeInitrd string
	image           string // squashfs, published to moobi
	refInitrd       string // busybox marker /init + the same squashfs
	imageSize       int64
	refInitrdSize   int64
	debian          *debianImage // --boot-image debian
}

// bootRun is one boot of one VM by one server.
type bootRun struct {
	server   string // moobi or dnsmasq
	firmware lab.Firmware
	rep      int
	end      string // the milestone the boot ends on
	load     string
	at       map[string]float64 // milestone -> seconds after power-on
	phases   []bootPhase        // moobi: the appliance's timeline
	logs     string             // where the logs were kept
}

type bootPhase struct {
	State   string    `json:"state"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Seconds float64   `json:"seconds"`
}

// Milestones, in boot order. Both servers have all but the moobi-only
// ones; "done" is running (moobi) or the initramfs marker (reference).
var bootMilestones = []struct{ key, label string }{
	{"dhcp", "first proxy DHCP answer to the VM"},
	{"ipxe", "iPXE running (its binary fetched by TFTP; BIOS: its script fetched)"},
	{"script", "iPXE script fetched (HTTP)"},
	{"kernel", "kernel requested (HTTP)"},
	{"fetched", "kernel and initramfs fetched (HTTP)"},
	{"linux", "Linux's console up (first kernel line on ttyS0)"},
	{"init", "/init started (console: `Run /init as init process`)"},
	{"marker", "reference initramfs prints its marker (console)"},
	{"modules", "node client: network drivers loaded (console; before they loaded first, every module)"},
	{"modules-all", "node client: every kernel module loaded (console)"},
	{"config", "node client: signed boot config verified (console)"},
	{"fetching", "node client reports fetching (moobi)"},
	{"verified", "image downloaded and verified (moobi)"},
	{"running", "running: switch_root into the image (moobi)"},
	{"image", "the image's init prints its greeting (console)"},
}

func (b *runner) bootSection(ctx context.Context) (extraSection, error) {
	f := b.c.boot
	var fws []lab.Firmware
	switch f.firmware {
	case "bios":
		fws = []lab.Firmware{lab.BIOS}
	case "uefi":
		fws = []lab.Firmware{lab.UEFI}
	case "both":
		fws = []lab.Firmware{lab.BIOS, lab.UEFI}
	default:
		return extraSection{}, fmt.Errorf("--boot-firmware %q: want bios, uefi or both", f.firmware)
	}
	if f.image != "random" && f.image != bootDebianName {
		return extraSection{}, fmt.Errorf("--boot-image %q: want random or debian", f.image)
	}
	if f.imageMiB < 0 || f.repeat < 1 || f.timeout <= 0 {
		return extraSection{}, errors.New("--boot-image-mib must be ≥ 0, --boot-repeat and --boot-timeout positive")
	}
	files := []string{lab.BusyboxPath, "/usr/lib/ipxe/undionly.kpxe"}
	if f.firmware != "bios" {
		files = append(files, lab.OVMFCode, lab.OVMFVars, "/usr/lib/ipxe/ipxe.efi")
	}
	for _, p := range files {
		if _, err := os.Stat(p); err != nil {
			return extraSection{}, fmt.Errorf("%w (Debian packages busybox-static, ipxe, ovmf)", err)
		}
	}
	var servers []string
	for _, s := range strings.Split(f.servers, ",") {
		switch s = strings.TrimSpace(s); s {
		case "moobi", "dnsmasq":
			servers = append(servers, s)
		default:
			return extraSection{}, fmt.Errorf("--boot-servers %q: want moobi, dnsmasq or both", f.servers)
		}
	}
	lab.CleanupStale(ctx)
	fmt.Printf("bench: boot: preparing kernel, node initramfs and the %s image\n", f.image)
	a, err := b.bootPrepare(ctx, slices.Contains(servers, "moobi"))
	if err != nil {
		return extraSection{}, err
	}
	var runs []bootRun
	for rep := 1; rep <= f.repeat; rep++ {
		for _, fw := range fws {
			for _, srv := range servers {
				if err := ctx.Err(); err != nil {
					return extraSection{}, err
				}
				fmt.Printf("bench: boot: %s VM by %s, run %d of %d\n", fw, srv, rep, f.repeat)
				dir := filepath.Join(b.s.dir, fmt.Sprintf("boot-%s-%s-%d", fw, srv, rep))
				r := bootRun{server: srv, firmware: fw, rep: rep, load: loadAvg(), logs: dir, end: map[string]string{"moobi": "running", "dnsmasq": "marker"}[srv]}
				if a.debian != nil {
					r.end = "target"
				}
				rctx, cancel := context.WithTimeout(ctx, f.timeout)
				if srv == "moobi" {
					err = b.bootMoobi(rctx, a, &r, dir)
				} else {
					err = b.bootReference(rctx, a, &r, dir)
				}
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return extraSection{}, ctx.Err()
					}
					return extraSection{}, fmt.Errorf("%s VM by %s: %w (logs in %s)", fw, srv, err, dir)
				}
				fmt.Printf("bench: boot: %s\n", r.summary())
				runs = append(runs, r)
			}
		}
	}
	if a.debian != nil {
		return extraSection{markdown: bootDebianReport(f, a, fws, runs)}, nil
	}
	return extraSection{markdown: bootReport(f, a, fws, runs), targets: bootTargets(fws, runs, a.imageSize)}, nil
}

// bootPrepare fetches the kernel, keys the node initramfs and builds the
// image and the reference initramfs.
func (b *runner) bootPrepare(ctx context.Context, nodeInitrd bool) (*bootAssets, error) {
	f := b.c.boot
	a := &bootAssets{}
	cache, err := filepath.Abs(f.cache)
	if err != nil {
		return nil, err
	}
	if a.kernel, err = lab.Kernel(ctx, cache); err != nil {
		return nil, err
	}
	if a.modules, err = lab.KernelModulesDir(cache); err != nil {
		return nil, err
	}
	if a.key, err = lab.SigningKey(cache); err != nil {
		return nil, err
	}
	if nodeInitrd {
		if a.nodeInitrd, err = b.bootNodeInitrd(ctx, cache, a.key); err != nil {
			return nil, err
		}
	}
	if f.image == bootDebianName {
		return a, b.bootPrepareDebian(ctx, cache, a)
	}
	a.image = filepath.Join(b.s.dir, "boot-image.squashfs")
	if err := lab.BuildBootImage(a.image, f.imageMiB); err != nil {
		return nil, err
	}
	// The traditional initramfs: busybox, an /init printing a marker, and
	// the same image as a file, so that both boots bring the same bytes
	// into the VM's memory.
	a.refInitrd = filepath.Join(b.s.dir, "boot-reference-initrd.cpio.gz")
	init := strings.Replace(lab.MarkerInit(bootMarker), "poweroff -f\n", "while true; do sleep 3600; done\n", 1)
	if err := lab.BuildInitramfs(a.refInitrd, init, map[string]string{"image.squashfs": a.image}); err != nil {
		return nil, err
	}
	for p, n := range map[string]*int64{a.image: &a.imageSize, a.refInitrd: &a.refInitrdSize} {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		*n = st.Size()
	}
	return a, nil
}

// bootNodeInitrd is the node initramfs trusting key: the base from `make
// initrd` (--boot-initrd-base, or beside --moobi) with the key appended
// (cheap), else lab.NodeInitrd (built from --boot-src, cached).
func (b *runner) bootNodeInitrd(ctx context.Context, cache, key string) (string, error) {
	base := b.c.boot.initrdBase
	if p := filepath.Join(filepath.Dir(b.c.moobi), "node-initrd.cpio.gz"); base == "" && bootFileExists(p) {
		base = p
	}
	if base == "" {
		src, _ := filepath.Abs(b.c.boot.src)
		fmt.Println("bench: boot: no node initramfs beside --moobi: building one (u-root, slow; `make initrd` avoids it)")
		p, _, err := lab.NodeInitrd(ctx, cache, b.c.moobi, src, key)
		return p, err
	}
	out := filepath.Join(b.s.dir, "node-initrd-keyed.cpio.gz")
	if msg, err := exec.CommandContext(ctx, b.c.moobi, "initrd", "build", "--base", base, "--key", key, "--out", out).CombinedOutput(); err != nil {
		return "", fmt.Errorf("moobi initrd build --base %s --key: %v\n%s", base, err, msg)
	}
	return out, nil
}

func bootFileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func bootMAC(fw lab.Firmware) string {
	return fmt.Sprintf("52:54:00:b0:07:%02x", int(fw)+1)
}

// bootMemoryMB leaves room for the image (or the initramfs holding it) in RAM.
func bootMemoryMB(a *bootAssets, imageMiB int) int {
	if a != nil && a.debian != nil {
		return bootDebianMemMB
	}
	return 512 + 4*imageMiB
}

func bootImageName(a *bootAssets) string {
	if a.debian != nil {
		return bootDebianName
	}
	return "web"
}

func (b *runner) bootMoobi(ctx context.Context, a *bootAssets, r *bootRun, dir string) error {
	l, err := lab.New(ctx, lab.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer l.Close()
	mac := bootMAC(r.firmware)
	cfg := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`appliance:
  interface: br0
  http_port: %d
  data_dir: %s/data
  ipxe_dir: /usr/lib/ipxe
  node_initrd: %s
  signing_key: %s
profiles:
  web:
    image: %s
    cmdline: %s
hosts:
  bench-boot:
    mac: %s
    profile: web
`, bootHTTPPort, dir, a.nodeInitrd, a.key, bootImageName(a), bootCmdline, mac)), 0o644); err != nil {
		return err
	}
	if a.debian != nil {
		if err := bootCatalogCopy(ctx, a.debian, filepath.Join(dir, "data")); err != nil {
			return err
		}
	} else if out, err := exec.CommandContext(ctx, b.c.moobi, "image", "add", "--config", cfg, "--name", "web",
		"--kernel", a.kernel, "--rootfs", a.image, "--modules", a.modules).CombinedOutput(); err != nil {
		return fmt.Errorf("moobi image add: %v\n%s", err, out)
	}
	app, err := l.StartAppliance(ctx, b.c.moobi, cfg)
	if err != nil {
		return err
	}
	defer app.Stop()
	if err := app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool { return e.Msg == "seeding" }); err != nil {
		return err
	}

	con := filepath.Join(dir, "console.stamped.log")
	start := time.Now()
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: "moobi", MAC: mac, Firmware: r.firmware, MemoryMB: bootMemoryMB(a, b.c.boot.imageMiB)})
	if err != nil {
		return err
	}
	stopWatch := bootWatchFile(vm.ConsolePath(), con)
	defer stopWatch()

	url := fmt.Sprintf("http://%s:%d/v1/nodes/%s", lab.ApplianceAddr, bootHTTPPort, mac)
	var node struct {
		State  string      `json:"state"`
		Reason string      `json:"reason"`
		Phases []bootPhase `json:"phases"`
	}
	for {
		if out, err := l.Command(ctx, "curl", "-sf", url).Output(); err == nil {
			if err := json.Unmarshal(out, &node); err != nil {
				return fmt.Errorf("GET %s: %w", url, err)
			}
		}
		if node.State == "failed" {
			return fmt.Errorf("node failed: %s", node.Reason)
		}
		if node.State == "degraded" {
			return fmt.Errorf("node degraded: %s", node.Reason)
		}
		if node.State == "running" && strings.Contains(vm.Console(), bootDoneLine(a, "moobi")) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node state %q, no image greeting: %w\nconsole:\n%s", node.State, ctx.Err(), lab.Tail(vm.Console(), 20))
		case <-vm.Done():
			return fmt.Errorf("qemu exited\nconsole:\n%s", lab.Tail(vm.Console(), 20))
		case <-time.After(500 * time.Millisecond):
		}
	}
	stopWatch()
	os.WriteFile(filepath.Join(dir, "node.json"), bootJSON(node), 0o644)

	lines, err := readStampedFile(con)
	if err != nil {
		return err
	}
	at := map[string]time.Time{}
	for _, p := range node.Phases {
		at[p.State] = p.Start
	}
	at["ipxe"] = at["firmware"]
	for k, t := range moobiLogMilestones(app.Entries(), mac) {
		at[k] = t
	}
	markers := moobiConsoleMarkers
	if a.debian != nil {
		markers = map[string]string{"modules": moobiConsoleMarkers["modules"], "modules-all": moobiConsoleMarkers["modules-all"], "config": moobiConsoleMarkers["config"], "target": bootDebianTarget}
	}
	for k, t := range consoleMilestones(lines, markers) {
		at[k] = t
	}
	r.phases = node.Phases
	r.at = bootSince(at, start)
	return nil
}

// moobiConsoleMarkers are the node client's and the image's console lines
// worth a milestone.
var moobiConsoleMarkers = map[string]string{
	"modules":     `msg="network modules loaded"`,
	"modules-all": `msg="kernel modules loaded"`,
	"config":      `msg="boot config verified"`,
	"image":       lab.ImageMarker,
}

// moobiLogMilestones finds in the appliance's log when the host's script
// was served and when its kernel and initrds were (the last of them).
func moobiLogMilestones(entries []lab.LogEntry, mac string) map[string]time.Time {
	at := map[string]time.Time{}
	var client string
	for _, e := range entries {
		if e.Msg == "http request" && e.MAC == mac && e.Status == 200 && strings.HasSuffix(e.URI, ".ipxe") {
			at["script"] = e.Time
			client, _, _ = strings.Cut(e.Client, ":")
			break
		}
	}
	if client == "" {
		return at
	}
	for _, e := range entries {
		ip, _, _ := strings.Cut(e.Client, ":")
		if e.Msg != "http request" || ip != client || e.Status != 200 {
			continue
		}
		if strings.HasSuffix(e.URI, "/kernel") || strings.HasSuffix(e.URI, "/modules") || strings.Contains(e.URI, "initrd") {
			if e.Time.After(at["fetched"]) {
				at["fetched"] = e.Time
			}
		}
	}
	return at
}

func (b *runner) bootReference(ctx context.Context, a *bootAssets, r *bootRun, dir string) error {
	l, err := lab.New(ctx, lab.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer l.Close()
	mac := bootMAC(r.firmware)
	web := filepath.Join(dir, "www")
	if err := os.MkdirAll(web, 0o755); err != nil {
		return err
	}
	// nginx's workers run as www-data.
	for _, d := range []string{filepath.Dir(dir), dir, web} {
		os.Chmod(d, 0o755)
	}
	base := fmt.Sprintf("http://%s:%d", lab.ApplianceAddr, bootHTTPPort)
	script := fmt.Sprintf("#!ipxe\nkernel %[1]s/%[2]s initrd=%[3]s %[4]s\ninitrd %[1]s/%[3]s\nboot\n", base, bootKernel, bootInitrd, bootCmdline)
	serve := map[string]string{a.kernel: bootKernel, a.refInitrd: bootInitrd}
	if a.debian != nil {
		// The modules initrd moobi's nodes get, and the squashfs for /init.
		script = fmt.Sprintf("#!ipxe\nkernel %[1]s/%[2]s initrd=%[3]s initrd=%[5]s %[4]s\ninitrd %[1]s/%[3]s\ninitrd %[1]s/%[5]s\nboot\n", base, bootKernel, bootInitrd, bootCmdline, bootModulesCpio)
		serve[a.debian.modules] = bootModulesCpio
		serve[a.image] = bootRootfs
	}
	if err := os.WriteFile(filepath.Join(web, bootScript), []byte(script), 0o644); err != nil {
		return err
	}
	for src, name := range serve {
		if err := os.Link(src, filepath.Join(web, name)); err != nil {
			if _, err := copyFile(src, filepath.Join(web, name)); err != nil {
				return err
			}
		}
		os.Chmod(filepath.Join(web, name), 0o644)
	}
	access := filepath.Join(dir, "nginx", "access.log")
	confPath, err := writeNginxConf(filepath.Join(dir, "nginx"), lab.ApplianceAddr, bootHTTPPort, web, access)
	if err != nil {
		return err
	}
	nginx, err := bootStart(l.Command(ctx, mustLook("nginx"), "-e", filepath.Join(dir, "nginx", "error.log"), "-p", filepath.Join(dir, "nginx"), "-c", confPath), filepath.Join(dir, "nginx.out"), false)
	if err != nil {
		return err
	}
	defer nginx.stop()

	// dnsmasq as operators run it beside a site DHCP server: proxy DHCP
	// (PXE answers only) and TFTP for the iPXE binaries; iPXE itself (user
	// class "iPXE") is sent to the script on nginx.
	dlog := filepath.Join(dir, "dnsmasq.stamped.log")
	dnsmasq, err := bootStart(l.Command(ctx, mustLook("dnsmasq"),
		"--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface="+lab.BridgeName, "--bind-interfaces", "--pid-file",
		"--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"),
		"--log-dhcp", "--log-facility=-",
		"--dhcp-range="+strings.TrimSuffix(lab.ApplianceAddr, ".1")+".0,proxy",
		"--dhcp-userclass=set:ipxe,iPXE",
		"--pxe-service=tag:!ipxe,x86PC,Network boot,undionly.kpxe",
		"--pxe-service=tag:!ipxe,X86-64_EFI,Network boot,ipxe.efi",
		"--pxe-service=tag:ipxe,x86PC,iPXE,"+base+"/"+bootScript,
		"--pxe-service=tag:ipxe,X86-64_EFI,iPXE,"+base+"/"+bootScript,
		"--enable-tftp", "--tftp-root=/usr/lib/ipxe",
	), dlog, true)
	if err != nil {
		return err
	}
	defer dnsmasq.stop()
	if err := bootWaitFor(ctx, func() bool {
		s, _ := os.ReadFile(dlog)
		return strings.Contains(string(s), "TFTP root is")
	}); err != nil {
		return fmt.Errorf("dnsmasq did not start: %w\n%s", err, lab.Tail(bootReadText(dlog), 10))
	}
	if err := bootWaitFor(ctx, func() bool {
		return l.Command(ctx, "curl", "-sf", "-o", "/dev/null", base+"/"+bootScript).Run() == nil
	}); err != nil {
		return fmt.Errorf("nginx did not start: %w\n%s", err, bootReadText(filepath.Join(dir, "nginx", "error.log")))
	}

	con := filepath.Join(dir, "console.stamped.log")
	start := time.Now()
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: "reference", MAC: mac, Firmware: r.firmware, MemoryMB: bootMemoryMB(a, b.c.boot.imageMiB)})
	if err != nil {
		return err
	}
	stopWatch := bootWatchFile(vm.ConsolePath(), con)
	defer stopWatch()
	if err := bootWaitConsole(ctx, vm, bootDoneLine(a, "dnsmasq")); err != nil {
		return err
	}
	stopWatch()
	dnsmasq.stop()

	at := map[string]time.Time{}
	lines, err := readStampedFile(con)
	if err != nil {
		return err
	}
	for k, t := range consoleMilestones(lines, map[string]string{"marker": bootMarker, "switch": "MOOBI-BENCH-INITRAMFS: switch_root", "target": bootDebianTarget}) {
		at[k] = t
	}
	dl, err := readStampedFile(dlog)
	if err != nil {
		return err
	}
	for k, t := range dnsmasqMilestones(dl, mac) {
		at[k] = t
	}
	af, err := os.Open(access)
	if err != nil {
		return err
	}
	reqs, err := parseNginxAccess(af)
	af.Close()
	if err != nil {
		return err
	}
	for k, t := range nginxMilestones(reqs, start) {
		at[k] = t
	}
	// iPXE runs once its binary came over TFTP or, when the NIC's ROM is
	// iPXE, when it fetched its script: what moobi calls the firmware stage.
	at["ipxe"] = at["script"]
	if t, ok := at["tftp"]; ok && t.Before(at["ipxe"]) {
		at["ipxe"] = t
	}
	delete(at, "tftp")
	r.at = bootSince(at, start)
	return nil
}
