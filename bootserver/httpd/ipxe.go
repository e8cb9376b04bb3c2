package httpd

import (
	"net/http"
	"path/filepath"
)

// IPXEPath is the URL path of an iPXE binary served over HTTP, for UEFI
// HTTP boot firmware (the boot file a DHCP reply names is a full URL).
func IPXEPath(name string) string { return "/ipxe/" + name }

// ipxeBinary serves GET /ipxe/{name}: one of the iPXE binaries the
// appliance settings name (bios_binary, uefi_binary, arm64_binary), from
// ipxe_dir. Any other name is not found: the folder itself is not served.
func (s *Server) ipxeBinary(w http.ResponseWriter, r *http.Request) {
	app := s.Inventory().Appliance
	name := r.PathValue("name")
	for _, bin := range []string{app.BIOSBinary, app.UEFIBinary, app.ARM64Binary} {
		if name == bin {
			s.serveFile(w, r, filepath.Join(app.IPXEDir, bin))
			return
		}
	}
	http.Error(w, "not found", http.StatusNotFound)
}
