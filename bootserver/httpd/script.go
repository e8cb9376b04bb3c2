package httpd

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"

	"moobi/inventory"
)

// Script renders the iPXE script that boots host with its direct-netboot
// profile p; base is the appliance's HTTP root ("http://10.99.0.1:8080").
//
// Each initrd is fetched under its file name, and the kernel command line
// names them with initrd=NAME: a UEFI kernel's EFI stub loads initrds by
// those names (BIOS kernels ignore the argument). A failed download is
// retried rather than dropping the machine to a shell. moobi.hostname=NAME
// tells the booted system the host's name from hosts.yaml. iPXE expands
// settings such as ${net0/mac} in the command line.
func Script(host *inventory.Host, p *inventory.Profile, base string) ([]byte, error) {
	if !p.Direct() {
		return nil, fmt.Errorf("profile %s boots image %s: not a direct netboot", p.Name, p.Image)
	}
	prof := base + "/profiles/" + url.PathEscape(p.Name)
	args := make([]string, 0, len(p.Initrd)+1)
	for i := range p.Initrd {
		args = append(args, "initrd="+p.InitrdName(i))
	}
	if p.Cmdline != "" {
		args = append(args, p.Cmdline)
	}
	args = append(args, "moobi.hostname="+host.Name)
	var b bytes.Buffer
	fmt.Fprintf(&b, "#!ipxe\n")
	fmt.Fprintf(&b, "echo Moobi: booting %s (%s) with profile %s\n", host.Name, host.MAC, p.Name)
	fmt.Fprintf(&b, ":retry\n")
	fmt.Fprintf(&b, "imgfree\n")
	fmt.Fprintf(&b, "kernel %s/kernel %s || goto failed\n", prof, strings.Join(args, " "))
	for i := range p.Initrd {
		fmt.Fprintf(&b, "initrd %s/initrd/%d/%s || goto failed\n", prof, i, url.PathEscape(p.InitrdName(i)))
	}
	fmt.Fprintf(&b, "boot || goto failed\n")
	fmt.Fprintf(&b, ":failed\n")
	fmt.Fprintf(&b, "echo Moobi: boot failed, retrying in 5 seconds\n")
	fmt.Fprintf(&b, "sleep 5 ||\n")
	fmt.Fprintf(&b, "goto retry\n")
	return b.Bytes(), nil
}
