package httpd

import (
	"bytes"
	"fmt"
	"net"
	"strings"

	"moobi/images/catalog"
	"moobi/inventory"
)

// The Secure Boot chain: UEFI firmware loads shim (signed by Microsoft's
// UEFI CA) over TFTP, shim loads grub (signed by Debian) from the same
// server by the name GrubTFTPName, and grub — Debian's network build,
// whose prefix is /grub — reads $prefix/grub.cfg from the TFTP server of
// the firmware's DHCP answer. That file, the same for every host
// (GrubStub), has grub fetch the host's own configuration by MAC
// (boot/MAC.grub, see grubConfig), which loads the signed kernel (grub
// has shim verify it) and the initrds. Debian's signed grub has no HTTP
// module built in (and under Secure Boot loads none), so grub fetches
// everything over TFTP: OpenTFTP answers those names as GET /NAME.
const (
	ShimTFTPName       = "shimx64.efi"
	GrubTFTPName       = "grubx64.efi"
	GrubConfigTFTPName = "grub/grub.cfg"
)

// Boot formats of /boot/{mac}.{format}.
const (
	formatIPXE = "ipxe"
	formatGrub = "grub"
)

// scriptFormat splits a /boot/ file name into MAC text and format.
func scriptFormat(name string) (mac, format string, ok bool) {
	for _, f := range []string{formatIPXE, formatGrub} {
		if mac, ok := strings.CutSuffix(name, "."+f); ok {
			return mac, f, true
		}
	}
	return "", "", false
}

// renderBoot renders host's boot in format: with its direct profile p, or
// into image version m of p.
func renderBoot(format string, host *inventory.Host, p *inventory.Profile, m *catalog.Manifest, base, token string) ([]byte, error) {
	var plan bootPlan
	if p.Direct() {
		var err error
		if plan, err = directPlan(host, p, base, token); err != nil {
			return nil, err
		}
	} else {
		plan = imagePlan(host, p, m, base, token)
	}
	if format == formatGrub {
		return grubConfig(plan, host)
	}
	return retryScript(plan.banner, ScriptURL(base, host.MAC), plan.kernel,
		append(plan.initrdArgs(), plan.args...), plan.initrdURLs()), nil
}

// GrubConfigURL is where grub fetches the configuration of the node with
// mac; base is the appliance's HTTP root.
func GrubConfigURL(base string, mac net.HardwareAddr) string {
	return base + "/boot/" + mac.String() + ".grub"
}

// grubPath turns an http://ADDR[:PORT]/PATH URL of the appliance into
// grub's (tftp,ADDR)/PATH: the same file over TFTP (see OpenTFTP).
func grubPath(u string) (string, error) {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		return "", fmt.Errorf("grub fetches from the appliance's http:// root only, not %q", u)
	}
	hostport, path, _ := strings.Cut(rest, "/")
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return "(tftp," + host + ")/" + path, nil
}

// grubWord reports whether s can stand in a grub script unquoted and
// mean itself: no expansion ($), quoting, separators or comments.
func grubWord(s string) bool {
	return s != "" && !strings.ContainsAny(s, "$'\"\\;&|<>{}#` \t\r\n")
}

// grubConfig renders plan as a grub configuration. grub's linux command
// has shim verify the kernel's signature; the initrds are not verified.
// A failure returns to the stub (GrubStub), which fetches the
// configuration again.
func grubConfig(plan bootPlan, host *inventory.Host) ([]byte, error) {
	kernel, err := grubPath(plan.kernel)
	if err != nil {
		return nil, err
	}
	initrds := make([]string, len(plan.initrds))
	for i, f := range plan.initrds {
		if initrds[i], err = grubPath(f.url); err != nil {
			return nil, err
		}
	}
	for _, w := range append([]string{kernel}, initrds...) {
		if !grubWord(w) {
			return nil, fmt.Errorf("%q cannot be written in a grub configuration", w)
		}
	}
	for _, a := range plan.args {
		// grub would expand or split these: refuse rather than boot
		// something else than the inventory says.
		if strings.ContainsAny(a, inventory.GrubSpecial+"\r\n") {
			return nil, fmt.Errorf("kernel argument %q of %s holds characters grub interprets", a, host.Name)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Moobi: %s, through the Secure Boot chain.\n", plan.banner)
	fmt.Fprintf(&b, "echo 'Moobi: %s'\n", plan.banner)
	fmt.Fprintf(&b, "if linux %s %s; then\n", kernel, strings.Join(plan.args, " "))
	fmt.Fprintf(&b, "  if initrd %s; then\n", strings.Join(initrds, " "))
	fmt.Fprintf(&b, "    boot\n")
	fmt.Fprintf(&b, "  fi\n")
	fmt.Fprintf(&b, "fi\n")
	fmt.Fprintf(&b, "echo 'Moobi: boot failed'\n")
	return b.Bytes(), nil
}

// GrubStub is the grub configuration every host's grub reads over TFTP
// (GrubConfigTFTPName): it fetches the host's own configuration by MAC
// from the appliance
// (grub's net_default_mac, lower case with colons, as the URLs want it)
// and, should that fail or return, waits 5 s and fetches it again. The
// host's configuration holds no secret, but only hosts the inventory
// boots get one.
func GrubStub(base string) ([]byte, error) {
	cfg, err := grubPath(base + "/boot/${net_default_mac}.grub")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Moobi: each host's configuration comes from the appliance, by MAC.\n")
	fmt.Fprintf(&b, "set timeout=0\n")
	fmt.Fprintf(&b, "while true; do\n")
	fmt.Fprintf(&b, "  echo \"Moobi: fetching %s\"\n", cfg)
	fmt.Fprintf(&b, "  source %s\n", cfg)
	fmt.Fprintf(&b, "  echo 'Moobi: no boot, retrying in 5 seconds'\n")
	fmt.Fprintf(&b, "  sleep 5\n")
	fmt.Fprintf(&b, "done\n")
	return b.Bytes(), nil
}
