package httpd

import (
	"bytes"
	"fmt"
	"net"
	"strings"

	"moobi/images/catalog"
	"moobi/inventory"
)

// Script renders the iPXE script that boots host with its direct-netboot
// profile p (see directPlan); base is the appliance's HTTP root
// ("http://10.99.0.1:8080").
//
// Each initrd is fetched under its file name, and the kernel command line
// names them with initrd=NAME: a UEFI kernel's EFI stub loads initrds by
// those names (BIOS kernels ignore the argument). After a failed download
// the script fetches itself again rather than dropping the machine to a
// shell (see retryScript). iPXE expands settings such as ${net0/mac} in
// the command line.
func Script(host *inventory.Host, p *inventory.Profile, base, token string) ([]byte, error) {
	return renderBoot(formatIPXE, host, p, nil, base, token)
}

// ScriptURL is where the node with mac fetches its boot script; base is
// the appliance's HTTP root.
func ScriptURL(base string, mac net.HardwareAddr) string {
	return base + "/boot/" + mac.String() + ".ipxe"
}

// retryScript is an iPXE script that loads a kernel (with its command line
// args) and initrds and boots. On any failure it waits 5 s and replaces
// itself with a fresh copy of the node's boot script (self, its URL), and
// does so again until that fetch succeeds: a node whose appliance went
// away retries until it is back, then boots what the appliance says now,
// not URLs of an image version that may be gone by then.
func retryScript(banner, self, kernel string, args, initrds []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#!ipxe\n")
	fmt.Fprintf(&b, "echo Moobi: %s\n", banner)
	fmt.Fprintf(&b, "imgfree\n")
	fmt.Fprintf(&b, "kernel %s %s || goto failed\n", kernel, strings.Join(args, " "))
	for _, u := range initrds {
		fmt.Fprintf(&b, "initrd %s || goto failed\n", u)
	}
	fmt.Fprintf(&b, "boot || goto failed\n")
	fmt.Fprintf(&b, ":failed\n")
	fmt.Fprintf(&b, "echo Moobi: boot failed, retrying in 5 seconds\n")
	fmt.Fprintf(&b, "sleep 5 ||\n")
	fmt.Fprintf(&b, "chain --replace --autofree %s || goto failed\n", self)
	return b.Bytes()
}

// NodeInitrdName is the node initramfs's name in URLs and on kernel command lines.
const NodeInitrdName = "node-initrd.cpio.gz"

// ImageScript renders the iPXE script that boots host into image version m
// of profile p (see imagePlan).
func ImageScript(host *inventory.Host, p *inventory.Profile, m *catalog.Manifest, base, token string) ([]byte, error) {
	if p.Direct() {
		return nil, fmt.Errorf("profile %s is a direct netboot, not an image", p.Name)
	}
	return renderBoot(formatIPXE, host, p, m, base, token)
}
