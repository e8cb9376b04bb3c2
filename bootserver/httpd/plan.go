package httpd

import (
	"fmt"
	"net/url"

	"moobi/boottoken"
	"moobi/images/catalog"
	"moobi/inventory"
)

// bootPlan is what one boot of a host loads, whichever loader fetches it
// (iPXE's script or grub's configuration): a kernel, initrds and the
// kernel's arguments.
type bootPlan struct {
	banner string
	// kernel and each initrd's url are full HTTP URLs under base.
	kernel  string
	initrds []namedFile
	// args is the kernel command line but for the initrd=NAME arguments
	// an EFI-stub kernel booted by iPXE needs (see initrdArgs).
	args []string
}

type namedFile struct{ name, url string }

// initrdArgs is initrd=NAME for each initrd: a UEFI kernel's EFI stub
// loads the initrds iPXE hands it by those names (BIOS kernels ignore
// the argument). grub passes initrds itself and needs none.
func (b bootPlan) initrdArgs() []string {
	out := make([]string, len(b.initrds))
	for i, f := range b.initrds {
		out[i] = "initrd=" + f.name
	}
	return out
}

func (b bootPlan) initrdURLs() []string {
	out := make([]string, len(b.initrds))
	for i, f := range b.initrds {
		out[i] = f.url
	}
	return out
}

// directPlan boots host with its direct-netboot profile p: the profile's
// kernel and initrds, its cmdline, then moobi.hostname=NAME (the host's
// name from hosts.yaml) and moobi.boot=TOKEN (see boottoken).
func directPlan(host *inventory.Host, p *inventory.Profile, base, token string) (bootPlan, error) {
	if !p.Direct() {
		return bootPlan{}, fmt.Errorf("profile %s boots image %s: not a direct netboot", p.Name, p.Image)
	}
	prof := base + "/profiles/" + url.PathEscape(p.Name)
	b := bootPlan{
		banner: fmt.Sprintf("booting %s (%s) with profile %s", host.Name, host.MAC, p.Name),
		kernel: prof + "/kernel",
	}
	for i := range p.Initrd {
		b.initrds = append(b.initrds, namedFile{p.InitrdName(i), fmt.Sprintf("%s/initrd/%d/%s", prof, i, url.PathEscape(p.InitrdName(i)))})
	}
	if p.Cmdline != "" {
		b.args = append(b.args, p.Cmdline)
	}
	b.args = append(b.args, "moobi.hostname="+host.Name, boottoken.CmdlineParam+"="+token)
	return b, nil
}

// imagePlan boots host into image version m of profile p: the image's
// kernel with the node initramfs (whose /init fetches the image over
// BitTorrent) and the image's modules archive. moobi.server and
// moobi.version tell the node client where to ask for its boot config and
// which version its kernel belongs to, moobi.boot the boot token it
// presents with its requests (see boottoken).
func imagePlan(host *inventory.Host, p *inventory.Profile, m *catalog.Manifest, base, token string) bootPlan {
	ver := base + "/images/" + url.PathEscape(m.Name) + "/" + url.PathEscape(m.Version)
	b := bootPlan{
		banner:  fmt.Sprintf("booting %s (%s) into image %s version %s", host.Name, host.MAC, m.Name, m.Version),
		kernel:  ver + "/kernel",
		initrds: []namedFile{{NodeInitrdName, base + "/node/" + NodeInitrdName}},
	}
	if _, ok := m.Files[catalog.FileModules]; ok {
		b.initrds = append(b.initrds, namedFile{catalog.FileModules, ver + "/" + catalog.FileModules})
	}
	if p.Cmdline != "" {
		b.args = append(b.args, p.Cmdline)
	}
	b.args = append(b.args, "moobi.server="+base, "moobi.mac="+host.MAC.String(), "moobi.hostname="+host.Name,
		"moobi.version="+m.Version, boottoken.CmdlineParam+"="+token)
	return b
}
