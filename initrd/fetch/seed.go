package fetch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"moobi/images/piecestore"
	"moobi/images/swarm"
)

// SeedSpec is what a seeder needs to serve a verified image: written by the
// node before it pivots, read by the seeder process that outlives it.
type SeedSpec struct {
	InfoBytes []byte `json:"info"`
	Path      string `json:"path"`
	Tracker   string `json:"tracker"`
	Port      int    `json:"port"`
	Image     string `json:"image"`
	Version   string `json:"version"`
	// Server and MAC let the seeder report the node's state after the
	// pivot.
	Server string `json:"server,omitempty"`
	MAC    string `json:"mac,omitempty"`
	// BootToken is the boot's token (Options.BootToken), which the
	// appliance requires on the seeder's reports too.
	BootToken string `json:"boot,omitempty"`
	// WatchSystemd says the image's init is systemd: the seeder reports
	// the node running (or degraded) once systemd has reached its default
	// target.
	WatchSystemd bool `json:"watch_systemd,omitempty"`
}

// SaveSeedSpec writes the spec of this session's verified image to path;
// watchSystemd asks the seeder to report the node's state once the image's
// systemd is up.
func (s *Session) SaveSeedSpec(path string, watchSystemd bool) error {
	b, err := json.Marshal(SeedSpec{InfoBytes: s.infoBytes, Path: s.Path, Tracker: s.Config.Tracker, Port: s.o.Port,
		Image: s.Config.Image, Version: s.Config.Version, Server: s.o.Server, MAC: s.o.MAC.String(), BootToken: s.o.BootToken, WatchSystemd: watchSystemd})
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("seed spec: %w", err)
	}
	return nil
}

// Seed serves the verified image described by the spec at specPath until
// ctx ends. The image verified before the spec was written, so its pieces
// are served without hashing them again. ready, if set, is called once the
// image file is open and the seeder listens: from then on the file's path
// may go away (the node pivots) without stopping the seeder.
func Seed(ctx context.Context, specPath string, log *slog.Logger, ready func()) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("seed spec: %w", err)
	}
	var spec SeedSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("seed spec %s: %w", specPath, err)
	}
	if spec.Port == 0 {
		spec.Port = swarm.DefaultPort
	}
	proc := -1
	if spec.WatchSystemd {
		if proc, err = OpenProc(); err != nil {
			log.Warn("cannot watch systemd: /proc", "err", err)
			spec.WatchSystemd = false
		}
	}
	cl, err := swarm.NewClient(swarm.NodeConfig(spec.Port, log.With("component", "torrent")), swarm.HandshakeLimits())
	if err != nil {
		return fmt.Errorf("seeder: BitTorrent client on port %d: %w", spec.Port, err)
	}
	defer cl.Close()
	t, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  metainfo.HashBytes(spec.InfoBytes),
		InfoBytes: spec.InfoBytes,
		Storage:   &piecestore.File{Path: spec.Path, ReadOnly: true, Trusted: true},
	})
	<-t.GotInfo() // the storage (the image file) is open
	t.AddTrackers([][]string{{spec.Tracker}})
	log.Info("seeding", "image", spec.Image, "version", spec.Version, "path", spec.Path, "complete", t.Complete().Bool())
	if ready != nil {
		ready()
	}
	if spec.WatchSystemd {
		go WatchSystemd(ctx, spec, proc, log)
	}
	<-ctx.Done()
	return nil
}
