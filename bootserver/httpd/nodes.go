package httpd

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"moobi/boottoken"
	"moobi/inventory"
	"moobi/nodeapi"
	"moobi/nodes"
)

// postEvent records a node's report about itself. Events for a MAC are
// accepted only with a boot token of that MAC, from the address that first
// used it (see allowNode), so another host on the VLAN cannot post events
// for the node's boot.
func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) {
	mac, err := inventory.ParseMAC(r.PathValue("mac"))
	if err != nil {
		http.Error(w, "malformed MAC", http.StatusBadRequest)
		return
	}
	h, _, ok := s.Inventory().Lookup(mac)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	if !s.allowNode(w, r, h, "event") {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, nodeapi.MaxEventBytes)
	e, err := nodeapi.DecodeEvent(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.Nodes.Report(mac, h.Name, e, ip)
	log := s.Log.Info
	if e.State == nodeapi.StateFailed {
		log = s.Log.Warn
	}
	log("node event", "mac", mac.String(), "name", h.Name, "state", e.State, "reason", e.Reason, "message", e.Message,
		"image", e.Image, "version", e.Version, "done", e.Done, "total", e.Total, "reused", e.Reused, "from_peers", e.FromPeers, "from_appliance", e.FromApp, "from_webseed", e.FromSeed)
	w.WriteHeader(http.StatusNoContent)
}

// allowNode checks that the request carries a boot token the appliance
// issued for h in a boot script (boottoken.Header), used from the address
// it was first used from, and answers 403 if not. It also applies the
// per-node rate limit.
func (s *Server) allowNode(w http.ResponseWriter, r *http.Request, h *inventory.Host, what string) bool {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	if err := s.bootTokens().Check(h.MAC, r.Header.Get(boottoken.Header), ip); err != nil {
		s.Log.Warn("node request refused: boot token", "mac", h.MAC.String(), "name", h.Name, "what", what, "client", ip, "err", err)
		http.Error(w, fmt.Sprintf("%s for %s: %v: this node's requests must carry the token its boot script set (%s=)", what, h.MAC, err, boottoken.CmdlineParam), http.StatusForbidden)
		return false
	}
	// Per MAC and address: another host with a token of its own for the
	// MAC (it fetched the node's script) uses up its own allowance, not
	// the node's.
	if !s.limits.allow(h.MAC.String()+" "+ip, NodeRequestsPerSecond, NodeRequestBurst) {
		s.Log.Warn("node request refused: rate limit", "mac", h.MAC.String(), "what", what, "client", ip)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return false
	}
	return true
}

// bootTokens returns the server's boot tokens, made at first use. Their
// key is derived from the Signer's when it can derive one (tokens then
// survive a restart), else random.
func (s *Server) bootTokens() *boottoken.Tokens {
	s.tokensOnce.Do(func() {
		var key []byte
		if d, ok := s.Signer.(interface{ DeriveKey(string) []byte }); ok {
			key = d.DeriveKey("boot tokens")
		}
		s.tokens = boottoken.New(key)
	})
	return s.tokens
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	readings, _ := s.powerReadings()
	writeJSON(w, withPower(s.Nodes.List(s.Inventory()), readings))
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	mac, err := inventory.ParseMAC(r.PathValue("mac"))
	if err != nil {
		http.Error(w, "malformed MAC", http.StatusBadRequest)
		return
	}
	n, ok := s.Nodes.Get(s.Inventory(), mac)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	readings, _ := s.powerReadings()
	writeJSON(w, withPower([]nodes.Node{n}, readings)[0])
}

// observe marks what a node fetched, by the address it fetched from.
func (s *Server) observe(r *http.Request, state, what string) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.Nodes.SeenAt(ip, state, what)
}

// ImageSwarm is one image's swarm as the dashboard shows it.
type ImageSwarm struct {
	Image    string `json:"image"`
	Version  string `json:"version"` // the current version
	InfoHash string `json:"infohash"`
	Size     int64  `json:"size"`
	// Live peers of the current version in the tracker, the appliance's own
	// seeder apart.
	Seeders  int `json:"seeders"`
	Leechers int `json:"leechers"`
	// ApplianceBytes is what the appliance uploaded of the image since it
	// started (BitTorrent and web seed).
	ApplianceBytes int64 `json:"appliance_bytes"`
	// NodeBytes is what the nodes booting it downloaded in their current
	// boot, as they reported; PeerBytes the part of it that came from
	// other nodes (not from the appliance's seeder or web seed), and
	// Offload that part as a fraction.
	NodeBytes int64   `json:"node_bytes"`
	PeerBytes int64   `json:"peer_bytes"`
	Offload   float64 `json:"offload"`
	Nodes     int     `json:"nodes"`
}

// Swarms builds the swarm view of every image with a current version.
func (s *Server) Swarms() ([]ImageSwarm, error) {
	if s.Catalog == nil {
		return []ImageSwarm{}, nil
	}
	imgs, err := s.Catalog.List()
	if err != nil {
		return nil, err
	}
	var uploaded map[string]int64
	if s.Uploaded != nil {
		uploaded = s.Uploaded()
	}
	got, peers := map[string]int64{}, map[string]int64{}
	count := map[string]int{}
	for _, n := range s.Nodes.List(s.Inventory()) {
		if n.Image != "" {
			got[n.Image] += n.FromPeers + n.FromApp + n.FromSeed
			peers[n.Image] += n.FromPeers
			count[n.Image]++
		}
	}
	out := []ImageSwarm{}
	for _, img := range imgs {
		for _, m := range img.Versions {
			if m.Version != img.Current {
				continue
			}
			v := ImageSwarm{Image: img.Name, Version: m.Version, InfoHash: m.InfoHash, Size: m.Files["rootfs"].Size,
				ApplianceBytes: uploaded[img.Name], NodeBytes: got[img.Name], Nodes: count[img.Name]}
			if s.SwarmCounts != nil {
				var ih [20]byte
				if b, err := hex.DecodeString(m.InfoHash); err == nil && len(b) == 20 {
					copy(ih[:], b)
					v.Seeders, v.Leechers = s.SwarmCounts(ih)
				}
			}
			v.PeerBytes = peers[img.Name]
			if v.NodeBytes > 0 {
				v.Offload = float64(v.PeerBytes) / float64(v.NodeBytes)
			}
			out = append(out, v)
		}
	}
	return out, nil
}

func (s *Server) listSwarms(w http.ResponseWriter, r *http.Request) {
	sw, err := s.Swarms()
	if err != nil {
		s.Log.Error("swarm view", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeJSON(w, sw)
}

// stream sends live updates as server-sent events: `hello` (the server's
// time and sequence number), `nodes` (the MACs of every node listed, at the
// start and after each inventory reload), a `node` event with a node's JSON
// (as in /v1/nodes) each time one changes — every node after `nodes` —,
// `swarm` with /v1/swarm's JSON every few seconds, with PowerStates
// `power` (each BMC host's power reading by host name) and with Rollouts
// `rollouts` (GET /v1/rollouts's JSON), each at the start and whenever it
// changes (looked at every second). A client needs nothing else to start.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		s.Log.Error("live stream unsupported", "err", err)
		return
	}
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	var seen uint64
	first := true
	swarmTick := time.NewTicker(3 * time.Second)
	defer swarmTick.Stop()
	keepalive := time.NewTicker(25 * time.Second)
	defer keepalive.Stop()
	sendSwarm := func() error {
		sw, err := s.Swarms()
		if err != nil {
			return nil // logged by the next /v1/swarm; keep streaming nodes
		}
		return send("swarm", sw)
	}
	// hello gives the server's clock (for ages) and tells the client how
	// soon to reconnect.
	fmt.Fprint(w, "retry: 2000\n")
	if send("hello", map[string]any{"now": time.Now(), "seq": s.Nodes.Seq()}) != nil {
		return
	}
	if sendSwarm() != nil {
		return
	}
	var inv *inventory.Inventory
	var powerGen uint64
	powerSent := false
	var rolloutsSent []byte
	viewTick := time.NewTicker(time.Second)
	defer viewTick.Stop()
	for {
		changed := s.Nodes.Changed()
		top := s.Nodes.Seq()
		readings, gen := s.powerReadings()
		if s.PowerStates != nil && (!powerSent || gen != powerGen) {
			if send("power", readings) != nil {
				return
			}
			powerGen, powerSent = gen, true
		}
		if ro := s.rolloutsJSON(); ro != nil && !bytes.Equal(ro, rolloutsSent) {
			if send("rollouts", json.RawMessage(ro)) != nil {
				return
			}
			rolloutsSent = ro
		}
		if cur := s.Inventory(); cur != inv {
			// A reload may add, rename or remove hosts: send them all,
			// then "nodes" with the full list of MACs so a client can drop
			// the ones that are gone.
			inv, first = cur, true
		}
		list := withPower(s.Nodes.List(inv), readings)
		if first {
			macs := make([]string, len(list))
			for i, n := range list {
				macs[i] = n.MAC
			}
			if send("nodes", macs) != nil {
				return
			}
		}
		for _, n := range list {
			if first || n.Seq > seen {
				if send("node", n) != nil {
					return
				}
			}
		}
		seen, first = top, false
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-changed:
			// Coalesce bursts (a rack reporting progress) into one pass.
			select {
			case <-r.Context().Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		case <-swarmTick.C:
			if sendSwarm() != nil {
				return
			}
		case <-viewTick.C:
			// Power readings (and other views) are looked at again.
		case <-keepalive.C:
			rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			rc.Flush()
		}
	}
}

// Per-node request limits for events and boot configs, per MAC and client
// address.
const (
	NodeRequestsPerSecond = 5
	NodeRequestBurst      = 30
)

// Per-address limits for boot script fetches: iPXE fetches its script once
// per boot attempt, and again every 5 s while a boot fails. There is no
// per-MAC limit: another host could use up the node's own allowance.
const (
	ScriptRequestsPerSecond = 1
	ScriptRequestBurst      = 10
)
