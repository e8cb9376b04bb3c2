// Package seeder seeds every retained version of every image in the catalog
// from the appliance, over BitTorrent, picking up new versions as they are
// published and dropping pruned ones.
//
// A restart does not re-hash an unchanged image: after a rootfs verifies,
// a completion record of its file identity (inode, size, mtime, ctime) is
// kept; while the file still matches it, every piece is served as complete
// at once. A file that does not match — or that changes while being
// seeded — is hashed again, and pieces that fail are not served.
//
// The seeder rests a version (rest.go): once nodes hold every piece of it,
// it pauses its upload and lets them serve each other.
package seeder

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/fsnotify/fsnotify"
	"golang.org/x/time/rate"

	"moobi/images/catalog"
	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/admit"
)

// Seeder seeds the catalog.
type Seeder struct {
	Catalog *catalog.Catalog
	// StateDir keeps the completion records.
	StateDir string
	// Port is the peer port (swarm.DefaultPort if 0).
	Port int
	// Announce returns the tracker URL the seeder announces to.
	Announce func() string
	// UploadBytesPerSec returns the cap on what the seeder uploads (0: no
	// cap); nil: no cap. It is read again every restEvery.
	UploadBytesPerSec func() int64
	// RestCopies returns the number of peers that must hold every piece of
	// a version for its upload to pause (0: never pause); nil: never. It
	// is read again every restEvery.
	RestCopies func() int
	// Seeders returns how many peers hold the whole torrent ih, as the
	// tracker knows from their announces (nil: none known).
	Seeders func(ih [20]byte) int
	// Booted reports whether the host at addr booted from the appliance
	// (nil: every peer counts). Only connected peers at such addresses
	// count as holding the pieces they announce towards RestCopies.
	Booted func(addr netip.Addr) bool
	// Listed reports whether the tracker still lists the peer with ID id
	// in ih's swarm (nil: every peer is). The seeder counts the pieces of a
	// peer whose connection to it closed only while it is listed: a peer
	// that announced it stopped, or fell silent, holds nothing for the
	// rest.
	Listed func(ih, id [20]byte) bool
	// Rescan is how often the catalog is listed even without a change
	// notification (default 30 s).
	Rescan time.Duration
	Log    *slog.Logger

	client  *torrent.Client
	admit   *admit.Listener // the client's, for HandshakesClosed
	ready   chan struct{}
	mu      sync.Mutex
	asked   asked             // suggest's: which pieces each peer asked for
	seeding map[string]*entry // by infohash
	retired map[string]int64  // bytes uploaded by dropped torrents, by image
}

type entry struct {
	name, version, path string
	t                   *torrent.Torrent
	st                  *piecestore.File
	verifying           bool
	// rest's own: the upload is paused, when it last was, the upload
	// totals of the last restWindow, and what it saw of each peer.
	resting  bool
	restedAt time.Time
	sent     []sample
	watch    watcher
	// suggest's own: which piece was suggested to whom, what each peer
	// was told last, and peers that could not be told.
	suggested map[int]suggestion[*torrent.PeerConn]
	told      map[*torrent.PeerConn]swarm.Suggestion
	mute      map[*torrent.PeerConn]time.Time
}

// Run seeds until ctx ends.
func (s *Seeder) Run(ctx context.Context) error {
	port := s.Port
	if port == 0 {
		port = swarm.DefaultPort
	}
	if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
		return fmt.Errorf("seeder state: %w", err)
	}
	cfg := swarm.Config(port, s.Log.With("component", "torrent"))
	cfg.EstablishedConnsPerTorrent = swarm.SeedPeerConns
	// One node's request read ahead per connection, not the library's
	// 1 MiB.
	cfg.MaxAllocPeerRequestDataPerConn = swarm.RequestSize
	lim := rate.NewLimiter(rate.Inf, 0)
	s.limitUpload(lim)
	cfg.UploadRateLimiter = lim
	// While every torrent rests the client would refuse incoming
	// connections (it wants none), and so never see a new peer or one
	// that lacks pieces.
	cfg.AlwaysWantConns = true
	// Nodes the seeder is sending suggested pieces keep their place: a
	// node dropped to make room for another leaves its pieces half sent,
	// to be sent again to the next.
	cfg.Callbacks.PeerConnAdded = append(cfg.Callbacks.PeerConnAdded, (*torrent.PeerConn).Keep)
	cfg.Callbacks.PeerConnClosed = s.asked.forget
	// Which pieces each node asked for: a suggestion a node acted on stays
	// with it (suggest.go).
	cfg.Callbacks.ReadMessage = func(pc *torrent.PeerConn, m *pp.Message) {
		if m.Type == pp.Request {
			s.asked.add(pc, int(m.Index))
		}
	}
	cl, al, err := swarm.NewAdmittedClient(cfg, swarm.HandshakeLimits())
	if err != nil {
		return fmt.Errorf("seeder: start BitTorrent client on port %d: %w", port, err)
	}
	defer cl.Close()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("seeder: watch catalog: %w", err)
	}
	defer w.Close()
	s.mu.Lock()
	s.client, s.admit, s.seeding, s.retired = cl, al, map[string]*entry{}, map[string]int64{}
	s.mu.Unlock()
	rescan := s.Rescan
	if rescan == 0 {
		rescan = 30 * time.Second
	}
	tick := time.NewTicker(rescan)
	defer tick.Stop()
	s.Log.Info("seeder listening", "port", port)
	go s.rest(ctx, lim)
	s.sync(ctx, w)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-w.Events:
			if filepath.Base(ev.Name) == catalog.FileRootfs && ev.Op&(fsnotify.Write|fsnotify.Chmod|fsnotify.Remove|fsnotify.Rename) != 0 {
				s.changed(ctx, filepath.Dir(ev.Name))
			} else {
				s.sync(ctx, w)
			}
		case err := <-w.Errors:
			s.Log.Warn("seeder: catalog watch", "err", err)
		case <-tick.C:
			s.sync(ctx, w)
		}
	}
}

// sync seeds every version the catalog holds and drops the rest.
func (s *Seeder) sync(ctx context.Context, w *fsnotify.Watcher) {
	w.Add(s.Catalog.Root)
	imgs, err := s.Catalog.List()
	if err != nil {
		s.Log.Error("seeder: list catalog", "err", err)
		return
	}
	want := map[string]bool{}
	for _, img := range imgs {
		w.Add(filepath.Join(s.Catalog.Root, img.Name))
		for _, m := range img.Versions {
			want[m.InfoHash] = true
			s.mu.Lock()
			_, have := s.seeding[m.InfoHash]
			s.mu.Unlock()
			if have {
				continue
			}
			if err := s.add(ctx, m); err != nil {
				s.Log.Error("seeder: cannot seed", "image", m.Name, "version", m.Version, "err", err)
				continue
			}
			w.Add(filepath.Join(s.Catalog.Root, m.Name, m.Version))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ih, e := range s.seeding {
		if !want[ih] {
			s.retired[e.name] += uploaded(e.t)
			e.t.Drop()
			delete(s.seeding, ih)
			s.Log.Info("seeder: stopped seeding a pruned version", "image", e.name, "version", e.version)
		}
	}
}

func (s *Seeder) add(ctx context.Context, m *catalog.Manifest) error {
	mi, err := s.Catalog.MetaInfo(m.Name, m.Version)
	if err != nil {
		return err
	}
	path, err := s.Catalog.Path(m.Name, m.Version, catalog.FileRootfs)
	if err != nil {
		return err
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return fmt.Errorf("torrent of %s/%s: %w", m.Name, m.Version, err)
	}
	cur, err := statRecord(path, m.InfoHash)
	if err != nil {
		return err
	}
	if cur.Size != info.TotalLength() {
		return fmt.Errorf("%s holds %d bytes, its torrent %d: the file was truncated or replaced", path, cur.Size, info.TotalLength())
	}
	rec, ok := loadRecord(s.StateDir, m.InfoHash)
	trusted := ok && rec.sameFile(cur)
	st := &piecestore.File{Path: path, ReadOnly: true, Trusted: trusted}
	t, _ := s.client.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:                 mi.HashInfoBytes(),
		InfoBytes:                mi.InfoBytes,
		Storage:                  st,
		DisableInitialPieceCheck: true, // verify below, when needed
	})
	t.AddTrackers([][]string{{s.Announce()}})
	e := &entry{name: m.Name, version: m.Version, path: path, t: t, st: st}
	s.mu.Lock()
	s.seeding[m.InfoHash] = e
	s.mu.Unlock()
	if trusted {
		s.Log.Info("seeding", "image", m.Name, "version", m.Version, "infohash", m.InfoHash, "verified", "completion record")
		return nil
	}
	go s.verify(ctx, m.InfoHash, e)
	return nil
}

// changed re-verifies the version in dir after its rootfs changed on disk.
func (s *Seeder) changed(ctx context.Context, dir string) {
	s.mu.Lock()
	var found *entry
	var ih string
	for h, e := range s.seeding {
		if filepath.Dir(e.path) == dir {
			found, ih = e, h
		}
	}
	s.mu.Unlock()
	if found == nil {
		return
	}
	s.Log.Warn("seeder: image file changed on disk; verifying it again", "image", found.name, "version", found.version)
	dropRecord(s.StateDir, ih)
	found.st.Forget()
	go s.verify(ctx, ih, found)
}

// verify hashes every piece; pieces that fail are not served. A fully
// verified file gets a completion record.
func (s *Seeder) verify(ctx context.Context, ih string, e *entry) {
	s.mu.Lock()
	if e.verifying {
		s.mu.Unlock()
		return
	}
	e.verifying = true
	s.mu.Unlock()
	defer func() { s.mu.Lock(); e.verifying = false; s.mu.Unlock() }()
	start := time.Now()
	before, _ := statRecord(e.path, ih)
	err := e.t.VerifyDataContext(ctx)
	if err == nil {
		err = swarm.Settled(ctx, e.t)
	}
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.Log.Error("seeder: verify", "image", e.name, "version", e.version, "err", err)
		}
		return
	}
	bad := 0
	for i := 0; i < e.t.NumPieces(); i++ {
		if !e.t.PieceState(i).Complete {
			bad++
		}
	}
	if bad > 0 {
		s.Log.Error("seeder: image file is corrupt; its bad pieces are not served", "image", e.name, "version", e.version,
			"bad_pieces", bad, "pieces", e.t.NumPieces(), "file", e.path)
		return
	}
	after, err := statRecord(e.path, ih)
	if err != nil || !after.sameFile(before) {
		return // changed while hashing: the change event verifies again
	}
	after.Verified = time.Now()
	if err := saveRecord(s.StateDir, after); err != nil {
		s.Log.Warn("seeder: completion record", "err", err)
	}
	s.Log.Info("seeding", "image", e.name, "version", e.version, "infohash", ih, "verified", "hashed", "duration", time.Since(start).Round(time.Millisecond))
}

// Uploaded returns the bytes the appliance uploaded to peers, by image.
func (s *Seeder) Uploaded() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for name, n := range s.retired {
		out[name] += n
	}
	for _, e := range s.seeding {
		out[e.name] += uploaded(e.t)
	}
	return out
}

// HandshakesClosed returns the counts of incoming peer connections the
// seeder's listener closed: over the per-address handshake limit, and
// handshaking longest to make room for a newer one (zero before Run
// started its client).
func (s *Seeder) HandshakesClosed() admit.Stats {
	s.mu.Lock()
	al := s.admit
	s.mu.Unlock()
	if al == nil {
		return admit.Stats{}
	}
	return al.Stats()
}

// Seeding reports whether the version with this infohash is fully
// verified and offered to peers.
func (s *Seeder) Seeding(infohash string) bool {
	s.mu.Lock()
	e := s.seeding[infohash]
	s.mu.Unlock()
	return e != nil && e.t.Complete().Bool()
}

// Known reports whether ih is a torrent the seeder serves.
func (s *Seeder) Known(ih [20]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seeding[hex.EncodeToString(ih[:])]
	return ok
}

func uploaded(t *torrent.Torrent) int64 {
	st := t.Stats()
	return st.BytesWrittenData.Int64()
}
