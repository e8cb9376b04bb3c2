package inventory

import (
	"debug/pe"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Defaults of appliance.shim and appliance.grub: the signed boot loaders
// of Debian's shim-signed and grub-efi-amd64-signed packages. The shim is
// signed by Microsoft's UEFI CA and trusts Debian's key; the grub is
// Debian's network build, signed with that key.
const (
	DefaultShim = "/usr/lib/shim/shimx64.efi.signed"
	DefaultGrub = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"
)

// GrubSpecial are the characters grub's script language interprets
// (expansion, quoting, separators, comments): a kernel command line in a
// grub configuration may not hold them.
const GrubSpecial = "$'\"\\;&|<>{}#`"

// secureBootFlag parses a profile's or host's secure_boot; set tells an
// explicit false from none.
type secureBootFlag struct {
	on, set bool
	line    int
}

func (p *parser) secureBoot(v *yaml.Node, what string) secureBootFlag {
	var b bool
	if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil || v.Tag != "!!bool" {
		p.errorf(v.Line, "%s: secure_boot must be true or false", what)
		return secureBootFlag{}
	}
	return secureBootFlag{on: b, set: true, line: v.Line}
}

// checkSecureBoot resolves each host's secure_boot (its own, else its
// profile's) and checks what a Secure Boot chain needs: the shim and grub
// files, and for direct profiles a kernel that carries a signature.
func (p *parser) checkSecureBoot(inv *Inventory) {
	var firstLine int
	for _, name := range sortedKeys(inv.Profiles) {
		pr := inv.Profiles[name]
		if !pr.SecureBoot {
			continue
		}
		if firstLine == 0 || pr.secureBoot.line < firstLine {
			firstLine = pr.secureBoot.line
		}
		if pr.Direct() && pr.Kernel != "" {
			if err := checkSigned(pr.Kernel); err != nil {
				p.errorf(pr.secureBoot.line, "profile %s: secure_boot: %v", name, err)
			}
		}
		if strings.ContainsAny(pr.Cmdline, GrubSpecial) {
			p.errorf(pr.secureBoot.line, "profile %s: secure_boot: cmdline %q holds characters grub interprets (%s)", name, pr.Cmdline, GrubSpecial)
		}
	}
	for _, name := range sortedKeys(inv.Hosts) {
		h := inv.Hosts[name]
		pr := inv.Profiles[h.Profile]
		h.SecureBoot = pr != nil && pr.SecureBoot
		if h.secureBoot.set {
			h.SecureBoot = h.secureBoot.on
		}
		if !h.secureBoot.on {
			continue
		}
		if firstLine == 0 || h.secureBoot.line < firstLine {
			firstLine = h.secureBoot.line
		}
		if pr != nil && pr.Direct() && !pr.SecureBoot && pr.Kernel != "" {
			if err := checkSigned(pr.Kernel); err != nil {
				p.errorf(h.secureBoot.line, "host %s: secure_boot with profile %s: %v", name, pr.Name, err)
			}
		}
		if pr != nil && !pr.SecureBoot && strings.ContainsAny(pr.Cmdline, GrubSpecial) {
			p.errorf(h.secureBoot.line, "host %s: secure_boot: the cmdline of profile %s holds characters grub interprets (%s)", name, pr.Name, GrubSpecial)
		}
	}
	if firstLine == 0 {
		return
	}
	a := inv.Appliance
	for _, f := range []struct{ key, path, pkg string }{{"shim", a.Shim, "shim-signed"}, {"grub", a.Grub, "grub-efi-amd64-signed"}} {
		if st, err := os.Stat(f.path); err != nil {
			p.errorf(firstLine, "secure_boot needs appliance.%s: %s (Debian package %s)", f.key, describeStatErr(f.path, err), f.pkg)
		} else if !st.Mode().IsRegular() {
			p.errorf(firstLine, "secure_boot needs appliance.%s: %s is not a regular file", f.key, f.path)
		}
	}
}

// checkSigned reports whether kernel is a PE image (an EFI-stub kernel)
// with an Authenticode signature: grub hands it to shim to verify, and an
// unsigned kernel would be refused at every boot. Whether the signature
// chains to a trusted key is for shim to decide.
func checkSigned(kernel string) error {
	f, err := pe.Open(kernel)
	if err != nil {
		return fmt.Errorf("kernel %s is not an EFI (PE) image: %w", kernel, err)
	}
	defer f.Close()
	var dirs []pe.DataDirectory
	switch oh := f.OptionalHeader.(type) {
	case *pe.OptionalHeader64:
		dirs = oh.DataDirectory[:min(int(oh.NumberOfRvaAndSizes), len(oh.DataDirectory))]
	case *pe.OptionalHeader32:
		dirs = oh.DataDirectory[:min(int(oh.NumberOfRvaAndSizes), len(oh.DataDirectory))]
	}
	if len(dirs) <= pe.IMAGE_DIRECTORY_ENTRY_SECURITY || dirs[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].Size == 0 {
		return fmt.Errorf("kernel %s carries no signature (Secure Boot firmware would refuse it)", kernel)
	}
	return nil
}
