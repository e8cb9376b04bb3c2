package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"moobi/lab"
	"moobi/overlay"
)

// debianLab is a lab whose appliance serves a real Debian 12 server image,
// built by the documented recipe, as two catalog images: "debian" from the
// root filesystem tarball and "debian-oci" from a docker-archive of the same
// root with a second layer on top.
type debianLab struct {
	l        *lab.Lab
	app      *lab.Appliance
	bin, cfg string
	sshKey   string // the operator's private key; its public half is in hosts.yaml
}

// The hosts of TestDebianServer.
var (
	debA = rackNode{name: "deb-a", mac: "52:54:00:d1:00:01", fw: lab.BIOS} // cache disk, reboots
	debB = rackNode{name: "deb-b", mac: "52:54:00:d1:00:02", fw: lab.UEFI} // RAM, after A: fetches from A's seeder
	debC = rackNode{name: "deb-c", mac: "52:54:00:d1:00:03", fw: lab.BIOS} // the OCI image
)

func newDebianLab(t *testing.T, ctx context.Context) *debianLab {
	t.Helper()
	d := &debianLab{bin: moobiBinary(t)}
	cache := lab.TestCacheDir(t)
	start := time.Now()
	rootfs, err := lab.DebianRootfs(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Debian root filesystem %s ready in %v", rootfs, time.Since(start).Round(time.Second))
	initrd, key := nodeInitrd(t, ctx, d.bin)
	d.l = lab.NewForTest(t, ctx)
	dir := d.l.Dir()

	d.sshKey = filepath.Join(dir, "id_ed25519")
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "operator@lab", "-f", d.sshKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(d.sshKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// An operator's overlay folder: a template with the node's variables.
	if err := os.MkdirAll(filepath.Join(dir, "overlay/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "overlay/etc/moobi-test.tmpl"), "{{.Name}} rack={{.Vars.rack}} role={{.Vars.role}} address={{.Address}} image={{.Image}}\n")

	d.cfg = filepath.Join(dir, "hosts.yaml")
	writeFile(t, d.cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %[1]s/data
  ipxe_dir: /usr/lib/ipxe
  node_initrd: %[2]s
  signing_key: %[3]s
  seed_upload_mbit: 40
profiles:
  debian:
    image: debian
    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on
    cache: /dev/vda
    overlay: overlay
    vars: {rack: r1, role: web}
    authorized_keys: [%[4]q]
  debian-ram:
    image: debian
    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on
    overlay: overlay
    vars: {rack: r2, role: web}
    authorized_keys: [%[4]q]
  debian-oci:
    image: debian-oci
    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on
    overlay: overlay
    vars: {rack: r3, role: oci}
    authorized_keys: [%[4]q]
hosts:
  %[5]s:
    mac: %[6]s
    profile: debian
    vars: {role: db}
  %[7]s:
    mac: %[8]s
    profile: debian-ram
  %[9]s:
    mac: %[10]s
    profile: debian-oci
`, dir, initrd, key, strings.TrimSpace(string(pub)), debA.name, debA.mac, debB.name, debB.mac, debC.name, debC.mac))

	// The tarball path, and the OCI path (docker-archive) from the same
	// root with an upper layer that deletes /etc/motd (a whiteout) and adds
	// a file.
	start = time.Now()
	d.build(t, ctx, "debian", rootfs)
	t.Logf("image build from the tarball: %v", time.Since(start).Round(time.Second))
	archive := filepath.Join(dir, "debian-oci.tar")
	start = time.Now()
	if err := writeDockerArchive(rootfs, archive); err != nil {
		t.Fatal(err)
	}
	d.build(t, ctx, "debian-oci", "docker-archive:"+archive)
	t.Logf("docker-archive written and built: %v", time.Since(start).Round(time.Second))
	os.Remove(archive)

	d.app = startAppliance(t, ctx, d.l, d.bin, d.cfg)
	if err := d.app.WaitLog(ctx, 2*time.Minute, func(e lab.LogEntry) bool { return e.Msg == "seeding" }); err != nil {
		t.Fatal(err)
	}
	return d
}

// build runs `moobi image build` and fails the test on error.
func (d *debianLab) build(t *testing.T, ctx context.Context, image, source string) {
	t.Helper()
	// A fast zstd level: the test is about what boots, not its size.
	out, err := exec.CommandContext(ctx, d.bin, "image", "build", "--config", d.cfg, "--name", image, "--zstd-level", "3", source).CombinedOutput()
	if err != nil {
		t.Fatalf("moobi image build %s: %v\n%s", source, err, lab.Tail(string(out), 30))
	}
	if !strings.Contains(string(out), "published "+image+" version ") {
		t.Fatalf("moobi image build printed no version:\n%s", out)
	}
	t.Logf("moobi image build %s:\n%s", source, lab.Tail(string(out), 6))
}

// writeDockerArchive writes a `docker save` archive of an image whose first
// layer is the root filesystem tarball and whose second deletes etc/motd
// and adds etc/oci-layer.
func writeDockerArchive(rootfs, out string) error {
	base, err := tarball.LayerFromFile(rootfs, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return err
	}
	var upper bytes.Buffer
	tw := tar.NewWriter(&upper)
	for _, f := range []struct{ name, body string }{{"etc/.wh.motd", ""}, {"etc/oci-layer", "from the upper layer\n"}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		io.WriteString(tw, f.body)
	}
	tw.Close()
	top, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(upper.Bytes())), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Config.Cmd = "amd64", "linux", []string{"/sbin/init"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.NewTag("moobi.test/debian12:lab")
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, ref, img)
}

// ssh runs a command on a node as root with the operator's key.
func (d *debianLab) ssh(ctx context.Context, addr, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := d.l.Command(ctx, "ssh", "-i", d.sshKey, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "root@"+addr, command).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// hostKey is the node's ed25519 host key as an SSH client sees it.
func (d *debianLab) hostKey(t *testing.T, ctx context.Context, addr string) string {
	t.Helper()
	out, err := d.l.Command(ctx, "ssh-keyscan", "-T", "10", "-t", "ed25519", addr).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 3 {
		t.Fatalf("ssh-keyscan %s: %v: %q", addr, err, out)
	}
	return f[1] + " " + f[2]
}

// node reads the appliance's /v1/nodes/MAC.
func (d *debianLab) node(t *testing.T, ctx context.Context, mac string) nodeView {
	t.Helper()
	out, err := curl(ctx, d.l, "http://"+lab.ApplianceAddr+":8080/v1/nodes/"+mac)
	var n nodeView
	if err != nil || json.Unmarshal([]byte(out), &n) != nil {
		t.Fatalf("GET /v1/nodes/%s: %v: %s", mac, err, out)
	}
	return n
}

// waitRunning waits until the node's boot number boot reports running,
// and fails at once if it reports failed or degraded.
func (d *debianLab) waitRunning(t *testing.T, ctx context.Context, vm *lab.VM, mac string, boot int, timeout time.Duration) nodeView {
	t.Helper()
	var n nodeView
	eventually(t, ctx, timeout, 2*time.Second, func() (bool, string) {
		n = d.node(t, ctx, mac)
		if n.Boots == boot && (n.State == "failed" || n.State == "degraded") {
			t.Fatalf("%s: %s: %s\nconsole:\n%s", mac, n.State, n.Reason, lab.Tail(vm.Console(), 60))
		}
		return n.Boots == boot && n.State == "running", fmt.Sprintf("%s boot %d is %s (%s)", mac, n.Boots, n.State, n.LastEvent)
	})
	return n
}

// TestDebianServer boots the real Debian 12 server image on BIOS and UEFI
// VMs and checks, from the appliance's side over SSH, that each node is the
// server hosts.yaml describes: the operator's key logs in, hostname,
// machine-id, address (kept and renewed by the image's systemd-networkd),
// its own SSH host keys, the overlay's template, systemd running (which is
// when the node reports running); that a node's post-pivot seeder serves a
// later node; that the OCI image's whiteout holds; and that a node with a
// cache disk reboots with the same machine-id and host key without
// downloading its image again. Root and qemu; about 10 minutes (the
// Debian root filesystem is built once and kept in the test cache).
func TestDebianServer(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "mmdebstrap", "mksquashfs", "ssh", "ssh-keygen", "ssh-keyscan", "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	d := newDebianLab(t, ctx)
	l := d.l

	diskA := filepath.Join(l.Dir(), "deb-a.img")
	if err := os.WriteFile(diskA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(diskA, 1<<30); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	vmA, err := l.StartVM(ctx, lab.VMOptions{Name: "deb-a", MAC: debA.mac, Firmware: debA.fw, MemoryMB: 1024, DiskPath: diskA})
	if err != nil {
		t.Fatal(err)
	}
	a := d.waitRunning(t, ctx, vmA, debA.mac, 1, 12*time.Minute)
	t.Logf("%s (BIOS, cache disk) running after %v", debA.name, time.Since(start).Round(time.Second))
	hostKeyA := d.checkServer(t, ctx, debA, a, "rack=r1 role=db")

	// B (UEFI, RAM) boots the same image while A seeds it; C boots the
	// OCI image.
	start = time.Now()
	vmB, err := l.StartVM(ctx, lab.VMOptions{Name: "deb-b", MAC: debB.mac, Firmware: debB.fw, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	vmC, err := l.StartVM(ctx, lab.VMOptions{Name: "deb-c", MAC: debC.mac, Firmware: debC.fw, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	b := d.waitRunning(t, ctx, vmB, debB.mac, 1, 12*time.Minute)
	c := d.waitRunning(t, ctx, vmC, debC.mac, 1, 12*time.Minute)
	t.Logf("%s (UEFI) and %s (BIOS, OCI image) running after %v; %s took %d bytes from peers", debB.name, debC.name, time.Since(start).Round(time.Second), debB.name, b.FromPeers)
	if b.FromPeers <= 0 {
		t.Errorf("%s took nothing from peers: %s's post-pivot seeder did not serve it", debB.name, debA.name)
	}
	hostKeyB := d.checkServer(t, ctx, debB, b, "rack=r2 role=web")
	hostKeyC := d.checkServer(t, ctx, debC, c, "rack=r3 role=oci")
	if hostKeyA == hostKeyB || hostKeyB == hostKeyC || hostKeyA == hostKeyC {
		t.Errorf("nodes share SSH host keys: %s / %s / %s", hostKeyA, hostKeyB, hostKeyC)
	}
	if out, err := d.ssh(ctx, c.Address, "cat /etc/oci-layer; test -e /etc/motd && echo motd-present || echo motd-absent"); err != nil ||
		out != "from the upper layer\nmotd-absent" {
		t.Errorf("OCI layers on %s: %q, %v; want the upper layer's file and /etc/motd deleted by its whiteout", debC.name, out, err)
	}
	if out, err := d.ssh(ctx, a.Address, "test -e /etc/motd && echo motd-present"); err != nil || out != "motd-present" {
		t.Errorf("the tarball image lacks /etc/motd: %q, %v (the OCI check above would prove nothing)", out, err)
	}

	// A reboots from its cache disk: same identity, image not fetched again.
	vmA.Stop()
	start = time.Now()
	vmA2, err := l.StartVM(ctx, lab.VMOptions{Name: "deb-a2", MAC: debA.mac, Firmware: debA.fw, MemoryMB: 1024, DiskPath: diskA})
	if err != nil {
		t.Fatal(err)
	}
	a2 := d.waitRunning(t, ctx, vmA2, debA.mac, 2, 12*time.Minute)
	t.Logf("%s rebooted to running in %v, %d of %d bytes reused", debA.name, time.Since(start).Round(time.Second), a2.Reused, a2.Total)
	if a2.Total == 0 || a2.Reused != a2.Total {
		t.Errorf("after the reboot %s reused %d of %d bytes: the image was downloaded again", debA.name, a2.Reused, a2.Total)
	}
	if k := d.checkServer(t, ctx, debA, a2, "rack=r1 role=db"); k != hostKeyA {
		t.Errorf("%s's SSH host key changed across the reboot: %s, was %s", debA.name, k, hostKeyA)
	}
}

// checkServer logs into the node over SSH with the operator's key and
// checks its identity; it returns the node's ed25519 host key.
func (d *debianLab) checkServer(t *testing.T, ctx context.Context, n rackNode, v nodeView, vars string) string {
	t.Helper()
	if v.Address == "" {
		t.Fatalf("%s: the appliance knows no address", n.name)
	}
	lease, err := d.l.WaitSiteLease(ctx, n.mac)
	if err != nil {
		t.Fatal(err)
	}
	if lease != v.Address {
		t.Errorf("%s booted with %s, the site DHCP server leased it %s", n.name, v.Address, lease)
	}
	// running is reported when systemd has reached its default target.
	sawSystemd := false
	for _, e := range v.Events {
		sawSystemd = sawSystemd || e.State == "running" && strings.Contains(e.Message, "systemd reached its default target")
	}
	if !sawSystemd {
		t.Errorf("%s: no running event from systemd: %+v", n.name, v.Events)
	}
	var out string
	eventually(t, ctx, 2*time.Minute, 3*time.Second, func() (bool, string) {
		out, err = d.ssh(ctx, v.Address, "hostname; cat /etc/machine-id; systemctl is-system-running; cat /etc/moobi-test; grep -h ^ADDRESS= /run/systemd/netif/leases/*")
		if err != nil && strings.Contains(out, "netif/leases") {
			diag, _ := d.ssh(ctx, v.Address, "networkctl status -a --no-pager; ip -o link; journalctl -b --no-pager -u systemd-networkd -u systemd-udevd | tail -30")
			t.Fatalf("%s: systemd-networkd holds no DHCP lease:\n%s\n%s", n.name, out, diag)
		}
		return err == nil, fmt.Sprintf("ssh root@%s: %v: %s", v.Address, err, out)
	})
	lines := strings.Split(out, "\n")
	want := []string{n.name, overlay.MachineID(n.name), "running", n.name + " " + vars + " address=" + v.Address + " image=" + map[bool]string{true: "debian-oci", false: "debian"}[n == debC]}
	for i, w := range want {
		if i >= len(lines) || strings.TrimSpace(lines[i]) != w {
			t.Errorf("%s: line %d over SSH is %q, want %q (all: %q)", n.name, i+1, at(lines, i), w, out)
		}
	}
	// systemd-networkd holds the address DHCP gave the node (a renewable
	// lease), and the site DHCP server knows one lease for the MAC.
	if !strings.Contains(out, "\nADDRESS="+v.Address) {
		t.Errorf("%s: networkd does not hold %s as a DHCP lease:\n%s", n.name, v.Address, out)
	}
	leases, _ := os.ReadFile(d.l.SiteLeaseFile())
	if c := strings.Count(string(leases), " "+n.mac+" "); c != 1 {
		t.Errorf("%s: the site DHCP server holds %d leases for %s:\n%s", n.name, c, n.mac, leases)
	}
	return d.hostKey(t, ctx, v.Address)
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return ""
}
