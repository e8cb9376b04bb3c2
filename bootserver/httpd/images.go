package httpd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/anacrolix/torrent/bencode"

	"moobi/boottoken"
	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodeapi"
)

// BootConfig is the boot config of host, booting profile p with the image
// version m; base is the appliance's HTTP root.
func BootConfig(host *inventory.Host, p *inventory.Profile, m *catalog.Manifest, base string) nodeapi.BootConfig {
	ver := base + "/images/" + url.PathEscape(m.Name) + "/" + url.PathEscape(m.Version) + "/"
	return nodeapi.BootConfig{
		Name:     host.Name,
		MAC:      host.MAC.String(),
		Image:    m.Name,
		Version:  m.Version,
		Torrent:  ver + catalog.FileTorrent,
		InfoHash: m.InfoHash,
		Size:     m.Files[catalog.FileRootfs].Size,
		SHA256:   m.Files[catalog.FileRootfs].SHA256,
		WebSeed:  ver + catalog.FileRootfs,
		Tracker:  base + "/announce",
		Cmdline:  p.Cmdline,
		Cache:    p.Cache,
		// "fail" is also what nodes do without the field: send it only
		// when it changes something.
		CacheFallback: cacheFallback(p),
	}
}

// cacheFallback is the profile's cache_fallback as the boot config
// carries it: "" for the default (fail), which old nodes also follow.
func cacheFallback(p *inventory.Profile) string {
	if p.CacheFallback == inventory.CacheFallbackRAM {
		return nodeapi.CacheFallbackRAM
	}
	return ""
}

// manifestFor picks the version a host boots: the one its boot script named
// (so a node fetches the version its kernel came with, even if another was
// published since), else the image's current version.
func (s *Server) manifestFor(p *inventory.Profile, version string) (*catalog.Manifest, error) {
	if s.Catalog == nil {
		return nil, fmt.Errorf("no image catalog")
	}
	if version != "" {
		if m, err := s.Catalog.Manifest(p.Image, version); err == nil {
			return m, nil
		}
	}
	return s.Catalog.Current(p.Image)
}

func (s *Server) bootConfig(w http.ResponseWriter, r *http.Request) {
	h, p, err := s.lookup(r.PathValue("mac"))
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if p.Direct() {
		http.Error(w, "profile "+p.Name+" is a direct netboot: no image", http.StatusNotFound)
		return
	}
	// The config carries the host's identity: only the host gets it.
	if !s.allowNode(w, r, h, "boot config") {
		return
	}
	nonce := r.Header.Get(nodeapi.NonceHeader)
	if !nodeapi.ValidNonce(nonce) {
		http.Error(w, "the request needs a "+nodeapi.NonceHeader+" header of 32 to 64 hex digits", http.StatusBadRequest)
		return
	}
	m, err := s.manifestFor(p, s.bootVersion(h, p, r.URL.Query().Get("version")))
	if err != nil {
		s.Log.Error("no image for boot config", "mac", h.MAC.String(), "image", p.Image, "err", err)
		http.Error(w, "image "+p.Image+" has no current version", http.StatusNotFound)
		return
	}
	cfg := BootConfig(h, p, m, s.BaseURL())
	// Each piece's SHA-256 and BLAKE3, for versions published with the lists.
	dir := strings.TrimSuffix(cfg.WebSeed, catalog.FileRootfs)
	for _, l := range []struct {
		file      string
		url, hash *string
	}{
		{catalog.FilePieces, &cfg.Pieces, &cfg.PiecesSHA256},
		{catalog.FilePiecesBLAKE3, &cfg.PiecesBLAKE3, &cfg.PiecesBLAKE3SHA256},
	} {
		if sum, err := s.Catalog.PiecesSHA256(m.Name, m.Version, l.file); err == nil {
			*l.url, *l.hash = dir+l.file, sum
		} else if !errors.Is(err, catalog.ErrNotFound) {
			s.Log.Warn("piece list unreadable: the node checks pieces another way", "image", m.Name, "version", m.Version, "file", l.file, "err", err)
		}
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	if err := s.withOverlay(&cfg, OverlaySpec(h, p, m, ip, s.BaseURL())); err != nil {
		s.Log.Error("render overlay", "mac", h.MAC.String(), "name", h.Name, "err", err)
		http.Error(w, "overlay: "+err.Error(), http.StatusInternalServerError)
		return
	}
	cfg.Nonce, cfg.Boot = nonce, r.Header.Get(boottoken.Header)
	s.writeBootConfig(w, cfg)
}

// imageFile serves /images/{name}/{version}/{file}; "current" is an alias
// of the current version. The .torrent is rewritten with the announce and
// web seed URLs of the appliance as it is reached now.
func (s *Server) imageFile(w http.ResponseWriter, r *http.Request) {
	name, version, file := r.PathValue("name"), r.PathValue("version"), r.PathValue("file")
	if s.Catalog == nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	m, err := s.Catalog.Manifest(name, version)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if file == catalog.FileTorrent || file == ".torrent" {
		s.torrentFile(w, m, r.URL.Query().Get("webseed") != "0")
		return
	}
	path, err := s.Catalog.Path(name, m.Version, file)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if file == catalog.FileKernel {
		s.observe(r, nodeapi.StateKernel, "fetched the kernel of "+m.Name+" "+m.Version)
	}
	if file == catalog.FileRootfs && s.WebSeedSent != nil {
		// Web seed traffic is the appliance uploading the image itself.
		sw, _ := w.(*statusWriter)
		if sw != nil {
			before := sw.bytes
			defer func() { s.WebSeedSent(name, sw.bytes-before) }()
		}
	}
	s.serveFile(w, r, path)
}

// torrentFile serves a version's .torrent. With webSeed false the BEP 19
// url-list is left out: clients that favour web seeds over peers (aria2,
// Transmission) then fetch from the swarm only. The infohash is the same.
func (s *Server) torrentFile(w http.ResponseWriter, m *catalog.Manifest, webSeed bool) {
	mi, err := s.Catalog.MetaInfo(m.Name, m.Version)
	if err != nil {
		s.Log.Error("read torrent", "image", m.Name, "version", m.Version, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	base := s.BaseURL()
	mi.Announce = base + "/announce"
	mi.AnnounceList = nil
	mi.UrlList = nil
	if webSeed {
		mi.UrlList = []string{base + "/images/" + url.PathEscape(m.Name) + "/" + url.PathEscape(m.Version) + "/"}
	}
	b, err := bencode.Marshal(mi)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Write(b)
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	if s.Catalog == nil {
		writeJSON(w, []catalog.Image{})
		return
	}
	imgs, err := s.Catalog.List()
	if err != nil {
		s.Log.Error("list images", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeJSON(w, imgs)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}
