package httpd

import (
	"net"
	"net/http"
	"net/url"
	"strconv"

	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodeapi"
	"moobi/overlay"
)

// OverlaySpec is what the overlay of host, booting version m of profile p
// from the address addr, is rendered from; base is the appliance's HTTP root.
func OverlaySpec(host *inventory.Host, p *inventory.Profile, m *catalog.Manifest, addr, base string) overlay.Spec {
	id := inventory.Merged(p, host)
	return overlay.Spec{
		Node: overlay.Node{
			Name: host.Name, MAC: host.MAC.String(), Address: addr, Profile: p.Name,
			Image: m.Name, Version: m.Version, MachineID: overlay.MachineID(host.Name),
			Appliance: base, Vars: id.Vars,
		},
		AuthorizedKeys: id.AuthorizedKeys,
		Dirs:           id.OverlayDirs,
	}
}

// withOverlay renders the node's overlay and pins it in cfg. The overlay is
// rendered again when the node fetches it; for the same inventory and
// address it is the same bytes.
func (s *Server) withOverlay(cfg *nodeapi.BootConfig, spec overlay.Spec) error {
	b, sum, err := overlay.Render(spec)
	if err != nil {
		return err
	}
	cfg.MachineID = spec.Node.MachineID
	cfg.Overlay = &nodeapi.OverlayRef{
		URL:    s.BaseURL() + "/v1/nodes/" + url.PathEscape(cfg.MAC) + "/overlay?version=" + url.QueryEscape(cfg.Version),
		SHA256: sum,
		Size:   int64(len(b)),
	}
	return nil
}

// nodeOverlay serves /v1/nodes/{mac}/overlay: the node's rendered overlay,
// to the node only (it may hold the operator's configuration).
func (s *Server) nodeOverlay(w http.ResponseWriter, r *http.Request) {
	h, p, err := s.lookup(r.PathValue("mac"))
	if err != nil || p.Direct() {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if !s.allowNode(w, r, h, "overlay") {
		return
	}
	m, err := s.manifestFor(p, s.bootVersion(h, p, r.URL.Query().Get("version")))
	if err != nil {
		http.Error(w, "image "+p.Image+" has no current version", http.StatusNotFound)
		return
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	b, _, err := overlay.Render(OverlaySpec(h, p, m, ip, s.BaseURL()))
	if err != nil {
		s.Log.Error("render overlay", "mac", h.MAC.String(), "name", h.Name, "err", err)
		http.Error(w, "overlay: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}
