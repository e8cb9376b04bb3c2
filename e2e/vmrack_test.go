package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/lab"
)

// vmRack is a lab whose appliance boots the hosts of one image profile,
// "web", on VMs: the setup the node tests share.
type vmRack struct {
	l                    *lab.Lab
	app                  *lab.Appliance
	bin, cfg             string
	kernel, modules, key string
	image                string // the first image published
	version              string // its version
	size                 int64  // its size
}

type vmRackOptions struct {
	hosts    []rackNode
	imageMiB int
	// profile lines of "web" besides image and cmdline (e.g. "cache: /dev/vda").
	profile string
	// cmdline is appended to the web profile's kernel command line.
	cmdline string
	// appliance lines besides the basics (e.g. "seed_upload_mbit: 8").
	appliance string
	// initrd, if set, replaces the node initramfs of nodeInitrd.
	initrd string
	// modules, if set, replaces the lab kernel's module tree in publish.
	modules string
	// hostProfile gives hosts (by name) a profile of their own, "web-NAME":
	// the web profile with these lines instead of profile's.
	hostProfile map[string]string
	// hostLines are more lines of a host's entry (by name), e.g. "ip: ...".
	hostLines map[string]string
	// bareVLAN runs the lab without its site DHCP server (full DHCP mode).
	bareVLAN bool
	// siteNextServer is the site DHCP server's next server (lab.Options).
	siteNextServer string
}

// newVMRack builds the image, publishes it and starts the appliance (and
// waits until it seeds the image).
func newVMRack(t *testing.T, ctx context.Context, o vmRackOptions) *vmRack {
	t.Helper()
	r := &vmRack{bin: moobiBinary(t)}
	cache := lab.TestCacheDir(t)
	var err error
	if r.kernel, err = lab.Kernel(ctx, cache); err != nil {
		t.Fatal(err)
	}
	if r.modules, err = lab.KernelModulesDir(cache); err != nil {
		t.Fatal(err)
	}
	if o.modules != "" {
		r.modules = o.modules
	}
	initrd, key := nodeInitrd(t, ctx, r.bin)
	if o.initrd != "" {
		initrd = o.initrd
	}
	r.key = key
	r.l = lab.NewForTestWith(t, ctx, lab.Options{NoSiteDHCP: o.bareVLAN, SiteNextServer: o.siteNextServer})
	// indent puts each line of s under a YAML mapping at the given depth.
	indent := func(s, pad string) string {
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
			if line != "" {
				b.WriteString(pad + strings.TrimSpace(line) + "\n")
			}
		}
		return b.String()
	}
	var hosts, profiles strings.Builder
	for _, n := range o.hosts {
		profile := "web"
		if lines, ok := o.hostProfile[n.name]; ok {
			profile = "web-" + n.name
			fmt.Fprintf(&profiles, "  %s:\n    image: web\n    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on %s\n%s", profile, o.cmdline, indent(lines, "    "))
		}
		fmt.Fprintf(&hosts, "  %s:\n    mac: %s\n    profile: %s\n%s", n.name, n.mac, profile, indent(o.hostLines[n.name], "    "))
	}
	r.cfg = filepath.Join(r.l.Dir(), "hosts.yaml")
	writeFile(t, r.cfg, fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  data_dir: %s/data
  ipxe_dir: /usr/lib/ipxe
  node_initrd: %s
  signing_key: %s
%sprofiles:
  web:
    image: web
    cmdline: console=ttyS0 panic=-1 random.trust_cpu=on %s
%s%shosts:
%s`, r.l.Dir(), initrd, key, indent(o.appliance, "  "), o.cmdline, indent(o.profile, "    "), profiles.String(), hosts.String()))
	r.image = filepath.Join(r.l.Dir(), "image.squashfs")
	if err := lab.BuildBootImage(r.image, o.imageMiB); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(r.image)
	if err != nil {
		t.Fatal(err)
	}
	r.size = st.Size()
	r.version = r.publish(t, ctx, r.image)
	r.app = startAppliance(t, ctx, r.l, r.bin, r.cfg)
	if err := r.app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool { return e.Msg == "seeding" }); err != nil {
		t.Fatal(err)
	}
	return r
}

// publish adds a version of the web image made of rootfs and returns the
// version's name; extra are more `moobi image add` flags.
func (r *vmRack) publish(t *testing.T, ctx context.Context, rootfs string, extra ...string) string {
	t.Helper()
	args := append([]string{"image", "add", "--config", r.cfg, "--name", "web",
		"--kernel", r.kernel, "--rootfs", rootfs, "--modules", r.modules}, extra...)
	out, err := exec.CommandContext(ctx, r.bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("image add: %v\n%s", err, out)
	}
	var version string
	if _, err := fmt.Sscanf(string(out), "published web version %s", &version); err != nil {
		t.Fatalf("image add printed no version: %v\n%s", err, out)
	}
	return version
}

// url is the appliance's HTTP root as the lab reaches it.
func (r *vmRack) url(path string) string { return "http://" + lab.ApplianceAddr + ":8080" + path }
