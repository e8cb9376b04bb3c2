// Package nodeapi is the contract between the appliance and its nodes: the
// boot config a node fetches from /v1/nodes/{mac}/boot and the events it
// posts to /v1/nodes/{mac}/events. Both sides import it; field names are
// part of the HTTP interface.
package nodeapi

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// BootConfig tells a node which image to fetch and how to boot it.
type BootConfig struct {
	// Name is the host's name in hosts.yaml (the node's hostname).
	Name string `json:"name"`
	MAC  string `json:"mac"`
	// Image and Version name the catalog entry; Version is never "current".
	Image   string `json:"image"`
	Version string `json:"version"`
	// Torrent is the URL of the image's .torrent; InfoHash its v1 infohash (hex).
	Torrent  string `json:"torrent"`
	InfoHash string `json:"infohash"`
	// Size and SHA256 describe the root filesystem the torrent carries.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Pieces is the URL of each piece's SHA-256 (32 bytes a piece, in the
	// torrent's piece length), and PiecesSHA256 that list's SHA-256: the
	// node checks each piece against it as it arrives, instead of the
	// torrent's SHA-1 and a whole-file pass over SHA256. Empty for images
	// published without the list.
	Pieces       string `json:"pieces,omitempty"`
	PiecesSHA256 string `json:"pieces_sha256,omitempty"`
	// PiecesBLAKE3 is the URL of the same list with each piece's BLAKE3
	// (256-bit), and PiecesBLAKE3SHA256 that list's SHA-256. A node that
	// knows them checks pieces against it instead of Pieces (nodes of
	// earlier versions ignore both fields and use Pieces).
	PiecesBLAKE3       string `json:"pieces_blake3,omitempty"`
	PiecesBLAKE3SHA256 string `json:"pieces_blake3_sha256,omitempty"`
	// WebSeed is the HTTP URL of the root filesystem itself (BEP 19), used
	// when no peer can serve.
	WebSeed string `json:"webseed"`
	// Tracker is the announce URL.
	Tracker string `json:"tracker"`
	Cmdline string `json:"cmdline"`
	// Cache is the local cache device, or "" for RAM.
	Cache string `json:"cache"`
	// CacheFallback says what the node does when Cache is missing or too
	// small for the image: CacheFallbackFail ("" too, as configs from
	// appliances that predate the field) fails the boot, CacheFallbackRAM
	// caches the image in RAM instead and reports that it did.
	CacheFallback string `json:"cache_fallback,omitempty"`
	// MachineID is the node's /etc/machine-id: 32 hex digits, the same on
	// every boot of the host.
	MachineID string `json:"machine_id,omitempty"`
	// Overlay is the node's per-host overlay (identity and the operator's
	// files), which the node fetches and checks against SHA256 before it
	// writes it onto the image's writable root.
	Overlay *OverlayRef `json:"overlay,omitempty"`
	// Nonce is the one the node sent with its request (NonceHeader), and
	// Boot the boot token it presented (boottoken.Header): a node accepts
	// only the config answering this request of this boot, not a signed
	// config captured earlier and replayed.
	Nonce string `json:"nonce,omitempty"`
	Boot  string `json:"boot,omitempty"`
}

// NonceHeader carries the node's nonce on its boot config request: 32 to
// 64 hex digits, fresh for each request.
const NonceHeader = "Moobi-Nonce"

// ValidNonce reports whether n is a well-formed nonce.
func ValidNonce(n string) bool { return len(n) >= 32 && len(n) <= 64 && isHex(n) }

// OverlayRef pins a node's rendered overlay (a tar archive).
type OverlayRef struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// MaxOverlayBytes bounds an overlay a node accepts.
const MaxOverlayBytes = 8 << 20

// Values of BootConfig.CacheFallback (hosts.yaml's cache_fallback).
const (
	CacheFallbackFail = "fail"
	CacheFallbackRAM  = "ram"
)

// Validate reports the first missing or malformed field.
func (c *BootConfig) Validate() error {
	switch {
	case c.Image == "" || c.Version == "":
		return fmt.Errorf("boot config: image and version are required")
	case len(c.InfoHash) != 40 || !isHex(c.InfoHash):
		return fmt.Errorf("boot config: infohash %q is not 40 hex digits", c.InfoHash)
	case c.Torrent == "":
		return fmt.Errorf("boot config: torrent URL is required")
	case c.Size <= 0:
		return fmt.Errorf("boot config: size %d is not positive", c.Size)
	case len(c.SHA256) != 64 || !isHex(c.SHA256):
		return fmt.Errorf("boot config: sha256 %q is not 64 hex digits", c.SHA256)
	case c.PiecesSHA256 != "" && (c.Pieces == "" || len(c.PiecesSHA256) != 64 || !isHex(c.PiecesSHA256)):
		return fmt.Errorf("boot config: pieces needs a url and a pieces_sha256 of 64 hex digits")
	case (c.PiecesBLAKE3 != "" || c.PiecesBLAKE3SHA256 != "") && (c.PiecesBLAKE3 == "" || len(c.PiecesBLAKE3SHA256) != 64 || !isHex(c.PiecesBLAKE3SHA256)):
		return fmt.Errorf("boot config: pieces_blake3 needs a url and a pieces_blake3_sha256 of 64 hex digits")
	case c.MachineID != "" && (len(c.MachineID) != 32 || !isHex(c.MachineID)):
		return fmt.Errorf("boot config: machine_id %q is not 32 hex digits", c.MachineID)
	case c.Overlay != nil && (c.Overlay.URL == "" || len(c.Overlay.SHA256) != 64 || !isHex(c.Overlay.SHA256)):
		return fmt.Errorf("boot config: overlay needs a url and a sha256 of 64 hex digits")
	case c.Overlay != nil && (c.Overlay.Size <= 0 || c.Overlay.Size > MaxOverlayBytes):
		return fmt.Errorf("boot config: overlay size %d is not within 1..%d bytes", c.Overlay.Size, MaxOverlayBytes)
	case c.CacheFallback != "" && c.CacheFallback != CacheFallbackFail && c.CacheFallback != CacheFallbackRAM:
		return fmt.Errorf("boot config: cache_fallback %q is neither %q nor %q", c.CacheFallback, CacheFallbackFail, CacheFallbackRAM)
	}
	return nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// DecodeBootConfig parses and checks a boot config body.
func DecodeBootConfig(body []byte) (BootConfig, error) {
	var c BootConfig
	if err := json.Unmarshal(body, &c); err != nil {
		return BootConfig{}, fmt.Errorf("boot config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return BootConfig{}, err
	}
	return c, nil
}

// Node states, in boot order; Failed may follow any of them.
const (
	StateDHCP     = "dhcp"
	StateFirmware = "firmware"
	StateKernel   = "kernel"
	StateFetching = "fetching"
	StateVerified = "verified"
	StateRunning  = "running"
	// StateDegraded: the image's systemd reached its default target with
	// failed units (the event's Reason names them).
	StateDegraded = "degraded"
	StateFailed   = "failed"
)

// States lists every state, in boot order.
var States = []string{StateDHCP, StateFirmware, StateKernel, StateFetching, StateVerified, StateRunning, StateDegraded, StateFailed}

// ValidState reports whether s is a known state.
func ValidState(s string) bool {
	for _, x := range States {
		if x == s {
			return true
		}
	}
	return false
}

// Event is what a node reports about itself.
type Event struct {
	State string `json:"state"`
	// Reason says why, for failed.
	Reason string `json:"reason,omitempty"`
	// Message is free text for the timeline.
	Message string `json:"message,omitempty"`
	Image   string `json:"image,omitempty"`
	Version string `json:"version,omitempty"`
	// Bytes done and total of the image download, and where they came
	// from: other nodes, the appliance's seeder over BitTorrent, the
	// appliance's web seed over HTTP, the node's own cache.
	Done      int64 `json:"done,omitempty"`
	Total     int64 `json:"total,omitempty"`
	FromPeers int64 `json:"from_peers,omitempty"`
	FromApp   int64 `json:"from_appliance,omitempty"`
	FromSeed  int64 `json:"from_webseed,omitempty"`
	Reused    int64 `json:"reused,omitempty"`
	// Time is when the node saw it; the appliance stamps its own time too.
	Time time.Time `json:"time,omitzero"`
}

// MaxEventBytes bounds an event's encoded size.
const MaxEventBytes = 16 << 10

// DecodeEvent reads one event of at most MaxEventBytes and checks it.
func DecodeEvent(r io.Reader) (Event, error) {
	var e Event
	dec := json.NewDecoder(io.LimitReader(r, MaxEventBytes+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	if !ValidState(e.State) {
		return Event{}, fmt.Errorf("event: unknown state %q", e.State)
	}
	if len(e.Reason) > 1024 || len(e.Message) > 1024 {
		return Event{}, fmt.Errorf("event: reason or message longer than 1024 bytes")
	}
	if e.Done < 0 || e.Total < 0 || e.FromPeers < 0 || e.FromApp < 0 || e.FromSeed < 0 || e.Reused < 0 {
		return Event{}, fmt.Errorf("event: negative byte count")
	}
	return e, nil
}
