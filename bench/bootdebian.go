package main

// The boot section with --boot-image debian: the Debian 12 server root
// filesystem (lab.DebianRootfs) built into a moobi image by `moobi image
// build`, booted by moobi to running, against the same kernel booting from
// dnsmasq + nginx a busybox initramfs that fetches the same squashfs over
// plain HTTP, mounts it under a tmpfs overlay and switch_roots into the
// image's systemd. Both boots are timed to the same console line.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"moobi/lab"
)

const (
	bootDebianName = "debian"
	// bootDebianTarget ends the console line both boots end on, systemd's
	// "Reached target getty.target - Login Prompts." (between colour
	// codes): the last target systemd prints on ttyS0, as its serial getty
	// takes the console over; multi-user.target, the default, follows
	// without a console line.
	bootDebianTarget = "Login Prompts."
	bootDebianFailed = "MOOBI-BENCH-INITRAMFS: failed"
	bootRootfs       = "rootfs.squashfs"
	bootModulesCpio  = "modules.cpio.gz"
	bootDebianMemMB  = 1024
)

// debianImage is the Debian image as `moobi image build` made it.
type debianImage struct {
	tarball  string
	tarSize  int64
	data     string        // the data_dir the image was built into
	build    time.Duration // wall time of `moobi image build`
	summary  []string      // its summary lines: kernel, sizes, phases
	modules  string        // the catalog's modules cpio (an initrd of both boots)
	modsSize int64
}

// bootDebianInit is the reference initramfs's /init: load the virtio PCI
// bus, NIC, loop, squashfs and overlay modules (from the modules initrd;
// the NIC's driver binds asynchronously), DHCP, fetch the
// squashfs from nginx, mount it read-only under a tmpfs overlay and
// switch_root into the image's systemd.
func bootDebianInit(url string) string {
	return `#!/bin/sh
fail() { echo "` + bootDebianFailed + `: $*" > /dev/console; while true; do sleep 3600; done; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo '` + bootMarker + `' > /dev/console
for m in virtio_pci virtio_net loop squashfs overlay; do modprobe $m; done
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up || fail "no eth0"
udhcpc -i eth0 -f -q -n -t 20 -s /udhcpc.script || fail "no DHCP lease"
wget -q -O /` + bootRootfs + ` ` + lab.ShellQuote(url) + ` || fail "wget ` + url + `"
mkdir -p /ro /rw /newroot
mount -t squashfs -o loop,ro /` + bootRootfs + ` /ro || fail "mount squashfs"
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir -p /rw/upper /rw/work || fail "tmpfs"
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay"
echo 'MOOBI-BENCH-INITRAMFS: switch_root' > /dev/console
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
`
}

const bootUdhcpcScript = `#!/bin/sh
case "$1" in bound|renew) ifconfig "$interface" "$ip" netmask "$subnet" up ;; esac
`

// bootPrepareDebian builds the Debian image with `moobi image build` (once
// per run) and the reference initramfs; a's kernel and image become the
// catalog's.
func (b *runner) bootPrepareDebian(ctx context.Context, cache string, a *bootAssets) error {
	d := &debianImage{}
	var err error
	fmt.Println("bench: boot: the Debian 12 root filesystem (mmdebstrap, cached)")
	if d.tarball, err = lab.DebianRootfs(ctx, cache); err != nil {
		return err
	}
	dir := filepath.Join(b.s.dir, "boot-debian-build")
	d.data = filepath.Join(dir, "data")
	if err := os.MkdirAll(d.data, 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("appliance:\n  interface: br0\n  http_port: %d\n  data_dir: %s\n  signing_key: %s\n",
		bootHTTPPort, d.data, a.key)), 0o644); err != nil {
		return err
	}
	fmt.Println("bench: boot: moobi image build")
	start := time.Now()
	out, err := exec.CommandContext(ctx, b.c.moobi, "image", "build", "--config", cfg, "--name", bootDebianName, d.tarball).CombinedOutput()
	d.build = time.Since(start)
	os.WriteFile(filepath.Join(dir, "image-build.log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("moobi image build %s: %v\n%s", d.tarball, err, lab.Tail(string(out), 20))
	}
	for _, l := range strings.Split(string(out), "\n") {
		for _, p := range []string{"published ", "kernel ", "source ", "took "} {
			if strings.HasPrefix(l, p) && !strings.Contains(l, "(release ") { // not the progress log's kernel line
				d.summary = append(d.summary, strings.TrimSpace(l))
			}
		}
	}
	cur := filepath.Join(d.data, "images", bootDebianName, "current")
	a.kernel, a.image, d.modules = filepath.Join(cur, "kernel"), filepath.Join(cur, "rootfs"), filepath.Join(cur, "modules")
	for p, n := range map[string]*int64{d.tarball: &d.tarSize, a.image: &a.imageSize, d.modules: &d.modsSize} {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("after moobi image build: %w", err)
		}
		*n = st.Size()
	}
	a.debian = d
	script := filepath.Join(b.s.dir, "boot-udhcpc.script")
	if err := os.WriteFile(script, []byte(bootUdhcpcScript), 0o755); err != nil {
		return err
	}
	a.refInitrd = filepath.Join(b.s.dir, "boot-reference-initrd.cpio.gz")
	url := fmt.Sprintf("http://%s:%d/%s", lab.ApplianceAddr, bootHTTPPort, bootRootfs)
	if err := lab.BuildInitramfs(a.refInitrd, bootDebianInit(url), map[string]string{"udhcpc.script": script}); err != nil {
		return err
	}
	st, err := os.Stat(a.refInitrd)
	if err != nil {
		return err
	}
	a.refInitrdSize = st.Size()
	return nil
}

// bootCatalogCopy gives a moobi boot's data folder the built image (hard
// links: the catalog's files are never written after publishing).
func bootCatalogCopy(ctx context.Context, d *debianImage, data string) error {
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", "-l", filepath.Join(d.data, "images"), data).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -al the Debian image: %v: %s", err, out)
	}
	return nil
}

// bootWaitConsole waits for the done line on the VM's console and fails
// at once on the reference initramfs's failure line or when qemu exits.
func bootWaitConsole(ctx context.Context, vm *lab.VM, done string) error {
	for {
		c := vm.Console()
		if strings.Contains(c, done) {
			return nil
		}
		if i := strings.Index(c, bootDebianFailed); i >= 0 {
			return fmt.Errorf("reference initramfs: %s", strings.SplitN(c[i:], "\n", 2)[0])
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no %q on the console: %w\nconsole:\n%s", done, ctx.Err(), lab.Tail(c, 20))
		case <-vm.Done():
			return fmt.Errorf("qemu exited\nconsole:\n%s", lab.Tail(c, 20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// bootDoneLine is the console line a boot by server ends on.
func bootDoneLine(a *bootAssets, server string) string {
	switch {
	case a.debian != nil:
		return bootDebianTarget
	case server == "moobi":
		return lab.ImageMarker
	}
	return bootMarker
}

// bootDebianRows are the Debian table's phases; the reference's fetching
// and verified are its wget's request and last byte (nginx's log).
var bootDebianRows = []bootSpanRow{
	{"power-on → first proxy DHCP answer (firmware, NIC ROM / PXE)", "", "dhcp"},
	{"`dhcp`: → iPXE running (TFTP of the iPXE binary; BIOS: iPXE ROM fetches its script)", "dhcp", "ipxe"},
	{"`firmware`: iPXE → kernel requested (script, HTTP)", "ipxe", "kernel"},
	{"`kernel`: kernel, initramfs and modules downloaded (HTTP)", "kernel", "fetched"},
	{"→ Linux's console up (decompression, early start)", "fetched", "linux"},
	{"→ /init (initramfs unpacked)", "linux", "init"},
	{"/init → image download starts (moobi: modules, DHCP, signed config, torrent set-up; reference: modules, udhcpc)", "init", "fetching"},
	{"`fetching`: the squashfs downloaded (moobi: BitTorrent, and verified; reference: busybox wget, HTTP)", "fetching", "verified"},
	{"`verified`: → systemd reaches getty.target (mount, overlay, switch_root, systemd start; moobi: the node's identity too)", "verified", "target"},
	{"  → `running` reported (moobi: `systemctl is-system-running` says running)", "target", "running"},
}

func bootDebianSpan(r bootRun, from, to string) (float64, bool) {
	if r.server != "moobi" {
		alias := map[string]string{"fetching": "wget", "verified": "downloaded"}
		if k, ok := alias[from]; ok {
			from = k
		}
		if k, ok := alias[to]; ok {
			to = k
		}
	}
	return bootSpan(r, from, to)
}

func bootDebianReport(f *bootFlags, a *bootAssets, fws []lab.Firmware, runs []bootRun) string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	d := a.debian
	p("## Boot: the Debian 12 server image, moobi vs dnsmasq + nginx\n\n")
	p("The image: root filesystem tarball %s (lab.DebianRootfs, mmdebstrap), `moobi image build` %.1f s wall, squashfs %s, modules initrd %s; it printed:\n\n```\n%s\n```\n\n",
		size(d.tarSize), d.build.Seconds(), size(a.imageSize), size(d.modsSize), strings.Join(d.summary, "\n"))
	p("One qemu VM (TCG, %d MB, console=ttyS0) per boot, in a fresh lab. **moobi** boots an image profile (RAM, no cache disk): kernel, node initramfs and modules over HTTP, "+
		"the squashfs over BitTorrent, verified, mounted, per-node identity written, switch_root; the node reports `running` when systemd says so. "+
		"**dnsmasq + nginx**: dnsmasq as proxy DHCP and TFTP for iPXE, nginx serving the same kernel, a %s busybox initramfs and the same modules initrd; "+
		"/init loads virtio_pci, virtio_net, loop, squashfs and overlay, runs udhcpc, fetches the same squashfs with busybox wget, mounts it under a tmpfs overlay and switch_roots into systemd. "+
		"Both end on the console's `Reached target getty.target - Login Prompts.`, the last target line systemd prints before its serial getty takes the console (multi-user.target, the default, follows silently). %d boot%s per firmware and server; the median is shown. Seconds after qemu's start.\n\n",
		bootDebianMemMB, size(a.refInitrdSize), f.repeat, plural(f.repeat))
	for _, fw := range fws {
		m, ok1 := bootMedian(runs, "moobi", fw)
		r, ok2 := bootMedian(runs, "dnsmasq", fw)
		if !ok1 && !ok2 {
			continue
		}
		p("### %s\n\n| phase | moobi s | dnsmasq+nginx s |\n|---|---:|---:|\n", strings.ToUpper(fw.String()))
		writeBootSpans(&w, bootDebianRows, bootDebianSpan, m, r)
		mt, mok := m.at["target"]
		rt, rok := r.at["target"]
		p("| **total to `Reached target getty.target`** | **%s** | **%s** |\n\n", bootCell(mt, mok), bootCell(rt, rok))
		if ok1 {
			writeBootTimeline(&w, bootMAC(fw), m)
		}
	}
	writeEveryBoot(&w, runs)
	return w.String()
}
