package bootserver

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"

	"moobi/bootserver/httpd"
	"moobi/inventory"
)

// openSecureBoot opens the files of the Secure Boot chain a TFTP client
// asks for: the signed shim and grub, from where appliance.shim and
// appliance.grub name them, the grub configuration stub (rendered for the
// appliance's address), and what grub then fetches (httpd's OpenTFTP).
// ok is false for any other name.
func (s *Service) openSecureBoot(name string) (f *os.File, ok bool, err error) {
	app := s.Store.Current().Appliance
	switch strings.TrimPrefix(name, "/") {
	case httpd.ShimTFTPName:
		f, err = os.Open(app.Shim)
	case httpd.GrubTFTPName:
		f, err = os.Open(app.Grub)
	case httpd.GrubConfigTFTPName:
		f, err = grubStubFile(s.baseURL())
	default:
		if strings.HasPrefix(strings.TrimPrefix(name, "/"), "grub/") {
			// grub probes $prefix/x86_64-efi/ for module lists and
			// another grub.cfg: none exist.
			return nil, true, fmt.Errorf("%w: %s", fs.ErrNotExist, name)
		}
		if web := s.web.Load(); web != nil {
			return web.OpenTFTP(name)
		}
		return nil, false, nil
	}
	return f, true, err
}

// grubStubFile is the grub stub for base in an unlinked temporary file:
// the TFTP server serves open files (and takes their size for tsize).
func grubStubFile(base string) (*os.File, error) {
	stub, err := httpd.GrubStub(base)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "moobi-grub-*.cfg")
	if err != nil {
		return nil, fmt.Errorf("grub stub: %w", err)
	}
	os.Remove(f.Name())
	if _, err := f.Write(stub); err != nil {
		f.Close()
		return nil, fmt.Errorf("grub stub: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("grub stub: %w", err)
	}
	return f, nil
}

// secureBootEnv is the proxy DHCP's view of Secure Boot for inv: which
// MACs boot the signed chain, and the shim's TFTP name ("" when
// appliance.shim is missing: such hosts then get no answer).
func secureBootEnv(inv *inventory.Inventory, log *slog.Logger) (func(mac net.HardwareAddr) bool, string) {
	uses := func(mac net.HardwareAddr) bool {
		h, _, ok := inv.Lookup(mac)
		return ok && h.SecureBoot
	}
	st, err := os.Stat(inv.Appliance.Shim)
	if err == nil && st.Mode().IsRegular() {
		return uses, httpd.ShimTFTPName
	}
	if err == nil {
		err = fs.ErrInvalid
	}
	for _, h := range inv.Hosts {
		if h.SecureBoot {
			log.Warn("signed shim missing: secure_boot hosts get no answer", "file", inv.Appliance.Shim, "err", err)
			break
		}
	}
	return uses, ""
}
