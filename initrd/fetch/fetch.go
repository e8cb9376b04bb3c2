// Package fetch is the node client's image download, shared by the node
// initramfs and `moobi node fetch`: it reads the node's boot config from the
// appliance, downloads the image's root filesystem over BitTorrent into a
// local cache — reusing every piece already there that verifies — falls back
// to the appliance's web seed when no peer serves, verifies the whole file
// against the boot config's sha256, reports each step to the appliance, and
// keeps seeding.
package fetch

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/nodeapi"
)

// Options configure a fetch.
type Options struct {
	// Server is the appliance's HTTP root, e.g. http://10.99.0.1:8080.
	Server string
	MAC    net.HardwareAddr
	// Dir is the cache folder; the image goes to Dir/IMAGE.rootfs.
	Dir string
	// Path, if set, is where the image goes instead: a file, or a cache
	// device whose first bytes hold it.
	Path string
	// Version asks for a given image version (the one the kernel came
	// with); "" means the current one. A boot config for another version
	// is refused.
	Version string
	// BootToken is the token the node's boot script set (moobi.boot=): it
	// goes with every request to Server (boottoken.Header).
	BootToken string
	// PublicKey is the appliance's boot config signing key: a boot config
	// whose signature does not verify with it is refused (see bootsign).
	PublicKey ed25519.PublicKey
	// AllowUnsigned, when PublicKey is nil, accepts boot configs without
	// checking their signature: for user-space tools only. With neither
	// set, every boot config is refused.
	AllowUnsigned bool
	// Port is the BitTorrent peer port (swarm.DefaultPort if 0).
	Port int
	// WebSeedAfter is how long the download may go without receiving
	// anything before the appliance's web seed is used (default 10 s).
	WebSeedAfter time.Duration
	// StallTimeout ends a download that has received nothing for this long
	// even from the web seed (default 2 min): no peer and no web seed.
	StallTimeout time.Duration
	// ProgressEvery is the interval of progress events (default 2 s).
	ProgressEvery time.Duration
	HTTP          *http.Client
	Log           *slog.Logger
}

// Stats are a download's figures.
type Stats struct {
	Size      int64
	Reused    int64 // valid bytes already in the cache
	FromPeers int64 // from other nodes
	FromApp   int64 // from the appliance's seeder, over BitTorrent
	FromSeed  int64 // from the appliance's web seed
	Duration  time.Duration
	// FirstByte is the time from the boot config's arrival (signature
	// checked) to the first byte of the image received from any source;
	// 0 if nothing was received (the cache held the whole image).
	FirstByte time.Duration
}

// Session is a completed, verified download that is still seeding.
type Session struct {
	Config    nodeapi.BootConfig
	Path      string
	Stats     Stats
	client    *torrent.Client
	t         *torrent.Torrent
	store     *piecestore.File
	writeErr  chan error // the first chunk write error
	o         Options
	infoBytes []byte
	appBytes  *atomic.Int64 // received from the appliance's seeder
	// plan is each piece's priority from startPlan; suggestions carries
	// the latest suggestion of the appliance's seeder, suggested the
	// pieces raised for the one before (see suggest).
	plan        []torrent.PiecePriority
	suggestions chan []int
	suggested   []int
	// applianceDown is set while progress events go unheard; rejoins counts
	// the announces forced when the appliance answered again (see rejoin).
	applianceDown bool
	rejoins       int
	// stop ends the background delivery of the final event; bg waits for it.
	stop context.CancelFunc
	bg   sync.WaitGroup
}

// Close stops seeding, and stops retrying an event the appliance has not
// heard yet.
func (s *Session) Close() error {
	if s.stop != nil {
		s.stop()
	}
	s.bg.Wait()
	errs := s.client.Close()
	return errors.Join(errs...)
}

// Uploaded is how many bytes this node has served to its peers.
func (s *Session) Uploaded() int64 {
	st := s.t.Stats()
	return st.BytesWrittenData.Int64()
}

func (o *Options) defaults() {
	if o.Port == 0 {
		o.Port = swarm.DefaultPort
	}
	if o.WebSeedAfter == 0 {
		o.WebSeedAfter = 10 * time.Second
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = 2 * time.Minute
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = 2 * time.Second
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	o.HTTP = withToken(o.HTTP, o.Server, o.BootToken)
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Fetch downloads and verifies the node's image. On failure it reports a
// failed event (when the appliance answers) and returns the error.
func Fetch(ctx context.Context, o Options) (*Session, error) {
	o.defaults()
	s, err := fetch(ctx, o)
	if err != nil {
		Report(ctx, o, nodeapi.Event{State: nodeapi.StateFailed, Reason: err.Error()})
		return nil, err
	}
	return s, nil
}

func fetch(ctx context.Context, o Options) (*Session, error) {
	start := time.Now()
	cfg, err := GetBootConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	cfgAt := time.Now()
	log := o.Log.With("image", cfg.Image, "version", cfg.Version)
	mi, info, err := getTorrent(ctx, o, cfg)
	if err != nil {
		return nil, err
	}
	path := o.Path
	if path == "" {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("cache folder: %w", err)
		}
		path = filepath.Join(o.Dir, cfg.Image+".rootfs")
	}
	ccfg := swarm.NodeConfig(o.Port, log.With("component", "torrent"))
	seedBytes := &atomic.Int64{}
	ccfg.WebTransport = countingTransport{http.DefaultTransport, seedBytes}
	appBytes := &atomic.Int64{}
	var firstByte atomic.Int64 // nanoseconds after cfgAt
	ccfg.Callbacks.ReceivedUsefulData = append(ccfg.Callbacks.ReceivedUsefulData, func(torrent.ReceivedUsefulDataEvent) {
		if firstByte.Load() == 0 {
			firstByte.CompareAndSwap(0, int64(max(time.Since(cfgAt), 1)))
		}
	})
	suggestions := make(chan []int, 1)
	if ip, err := applianceAddr(ctx, o.Server); err != nil {
		log.Warn("cannot tell the appliance's seeder from other peers: its bytes count as from peers", "err", err)
	} else {
		ccfg.Callbacks.ReceivedUsefulData = append(ccfg.Callbacks.ReceivedUsefulData, countFrom(ip, appBytes))
		swarm.AcceptSuggestions(ccfg, takeSuggestions(ip, suggestions, log))
		ccfg.Callbacks.PeerConnAdded = append(ccfg.Callbacks.PeerConnAdded, keepAppliance(ip))
	}
	cl, err := swarm.NewClient(ccfg, swarm.HandshakeLimits())
	if err != nil {
		return nil, fmt.Errorf("start BitTorrent client on port %d: %w", o.Port, err)
	}
	s := &Session{Config: cfg, Path: path, client: cl, o: o, infoBytes: mi.InfoBytes, appBytes: appBytes, suggestions: suggestions}
	ok := false
	defer func() {
		if !ok {
			cl.Close()
		}
	}()
	s.store = &piecestore.File{Path: path}
	switch {
	case cfg.PiecesBLAKE3 != "":
		if s.store.BLAKE3, err = getPieceSums(ctx, o, cfg.PiecesBLAKE3, cfg.PiecesBLAKE3SHA256, info.NumPieces()); err != nil {
			return nil, err
		}
	case cfg.PiecesSHA256 != "":
		if s.store.SHA256, err = getPieceSums(ctx, o, cfg.Pieces, cfg.PiecesSHA256, info.NumPieces()); err != nil {
			return nil, err
		}
	}
	t, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:                 mi.HashInfoBytes(),
		InfoBytes:                mi.InfoBytes,
		Storage:                  s.store,
		DisableInitialPieceCheck: true, // checked below, before downloading
		ChunkSize:                swarm.RequestSize,
	})
	s.t = t
	// A chunk that cannot be written to the cache (a full tmpfs, a failing
	// disk) ends the download with the error: by default the client would
	// only stop downloading, and the node would wait for a stall.
	s.writeErr = make(chan error, 1)
	t.SetOnWriteChunkError(func(err error) {
		select {
		case s.writeErr <- err:
		default:
		}
	})
	select {
	case <-t.GotInfo():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Only what the cache may hold is hashed: a piece past the end the
	// cache file had is known missing (piecestore), so a fresh cache
	// costs nothing here.
	for _, i := range s.store.Unknown() {
		if err := t.Piece(i).VerifyDataContext(ctx); err != nil {
			return nil, fmt.Errorf("check the cache %s: piece %d: %w", path, i, err)
		}
	}
	if err := swarm.Settled(ctx, t); err != nil {
		return nil, fmt.Errorf("check the cache %s: %w", path, err)
	}
	s.Stats.Size = t.Length()
	s.Stats.Reused = t.BytesCompleted()
	log.Info("cache checked", "path", path, "reused", s.Stats.Reused, "size", s.Stats.Size)
	Report(ctx, o, s.event(nodeapi.StateFetching, "downloading the image"))
	t.AddTrackers([][]string{{cfg.Tracker}})
	t.DownloadAll()
	// Nodes that start together begin with different regions (startPlan).
	s.plan = startPlan(o.MAC, t.NumPieces())
	for i, p := range s.plan {
		if p != torrent.PiecePriorityNormal {
			t.Piece(i).SetPriority(p)
		}
	}
	if err := s.wait(ctx, seedBytes); err != nil {
		return nil, err
	}
	s.Stats.FromSeed, s.Stats.FromApp = seedBytes.Load(), appBytes.Load()
	s.Stats.FirstByte = time.Duration(firstByte.Load())
	st := t.Stats()
	s.Stats.FromPeers = max(0, st.BytesReadUsefulData.Int64()-s.Stats.FromSeed-s.Stats.FromApp)
	// With each piece's hash signed, every piece was checked against it as
	// it arrived (or was found in the cache): the whole-file pass would
	// hash each byte a second time.
	if s.store.SHA256 == nil && s.store.BLAKE3 == nil {
		if err := verifyFile(ctx, path, cfg.Size, cfg.SHA256); err != nil {
			return nil, err
		}
	}
	s.Stats.Duration = time.Since(start)
	log.Info("image verified", "path", path, "reused", s.Stats.Reused, "first_byte", s.Stats.FirstByte.Round(time.Millisecond), "from_peers", s.Stats.FromPeers, "from_appliance", s.Stats.FromApp, "from_webseed", s.Stats.FromSeed, "duration", s.Stats.Duration.Round(time.Millisecond))
	ok = true
	s.reportUntilHeard(ctx, s.event(nodeapi.StateVerified, "image verified"))
	return s, nil
}

// reportRetryMax is the longest wait between two attempts of reportUntilHeard.
const reportRetryMax = 30 * time.Second

// reportUntilHeard posts e and, if the appliance cannot take it now (down,
// restarting, unreachable), keeps posting it in the background — every
// ProgressEvery at first, then less often — until the appliance takes it,
// refuses it, or the session closes. A node that verified while the
// appliance was down must not stay "fetching" on the appliance once it is
// back.
func (s *Session) reportUntilHeard(ctx context.Context, e nodeapi.Event) {
	err := report(ctx, s.o, e)
	if err == nil || errors.Is(err, errRefused) {
		if err != nil {
			s.o.Log.Warn("event refused", "state", e.State, "err", err)
		}
		return
	}
	s.o.Log.Warn("cannot report event; retrying in the background", "state", e.State, "err", err)
	ctx, s.stop = context.WithCancel(ctx)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		wait := s.o.ProgressEvery
		for attempt := 2; ; attempt++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			err := report(ctx, s.o, e)
			switch {
			case err == nil:
				s.o.Log.Info("event reported", "state", e.State, "attempt", attempt)
				return
			case errors.Is(err, errRefused):
				s.o.Log.Warn("event refused", "state", e.State, "err", err)
				return
			case ctx.Err() != nil:
				return
			}
			wait = min(2*wait, reportRetryMax)
		}
	}()
}

// wait follows the download to its end, reporting progress and adding the
// web seed once nothing has arrived for WebSeedAfter.
func (s *Session) wait(ctx context.Context, seedBytes *atomic.Int64) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	// Progress is counted in verified pieces: bytes of pieces that then
	// fail their hash (a lying peer, a corrupt web seed) are no progress.
	lastDone, lastChange, lastReport := s.t.Stats().PiecesComplete, time.Now(), time.Now()
	webSeed := false
	for {
		select {
		case <-s.t.Complete().On():
			return nil
		case <-ctx.Done():
			return fmt.Errorf("download interrupted at %d of %d bytes: %w", s.t.BytesCompleted(), s.t.Length(), ctx.Err())
		case err := <-s.writeErr:
			return fmt.Errorf("write to the cache %s at %d of %d bytes: %w", s.Path, s.t.BytesCompleted(), s.t.Length(), err)
		case pieces := <-s.suggestions:
			s.suggest(pieces)
			continue
		case <-tick.C:
		}
		if done := s.t.Stats().PiecesComplete; done != lastDone {
			lastDone, lastChange = done, time.Now()
		}
		done := s.t.BytesCompleted()
		if webSeed && time.Since(lastChange) >= s.o.WebSeedAfter+s.o.StallTimeout {
			return fmt.Errorf("download stalled at %d of %d bytes: no peer and no web seed sent a valid piece for %v",
				done, s.t.Length(), time.Since(lastChange).Round(time.Second))
		}
		if !webSeed && time.Since(lastChange) >= s.o.WebSeedAfter {
			webSeed = true
			st := s.t.Stats()
			s.o.Log.Warn("no data from peers; using the appliance's web seed", "webseed", s.Config.WebSeed, "peers", st.ActivePeers)
			s.t.AddWebSeeds([]string{s.Config.WebSeed})
		}
		if time.Since(lastReport) >= s.o.ProgressEvery {
			lastReport = time.Now()
			// What reached the cache survives a power cut: the next boot
			// resumes from it.
			// A flush that fails (EIO: the disk lost what was written)
			// ends the download; EINVAL only says the file cannot be
			// flushed (a character device).
			if err := s.store.Sync(); errors.Is(err, syscall.EINVAL) {
				s.o.Log.Warn("cannot flush the cache", "path", s.Path, "err", err)
			} else if err != nil {
				return fmt.Errorf("flush the cache %s at %d of %d bytes: %w", s.Path, s.t.BytesCompleted(), s.t.Length(), err)
			}
			s.Stats.FromSeed = seedBytes.Load()
			// A progress event is stale in seconds: an appliance that does
			// not answer must not hold the download's bookkeeping up.
			rctx, cancel := context.WithTimeout(ctx, max(s.o.ProgressEvery, 5*time.Second))
			err := report(rctx, s.o, s.event(nodeapi.StateFetching, ""))
			cancel()
			if err != nil {
				s.o.Log.Warn("cannot report event", "state", nodeapi.StateFetching, "err", err)
			}
			var back bool
			s.applianceDown, back = applianceBack(s.applianceDown, err)
			if back {
				s.rejoin()
			}
		}
	}
}

func (s *Session) event(state, msg string) nodeapi.Event {
	e := nodeapi.Event{State: state, Message: msg, Image: s.Config.Image, Version: s.Config.Version, Time: time.Now()}
	if s.t != nil {
		st := s.t.Stats()
		e.Done, e.Total, e.Reused, e.FromSeed = s.t.BytesCompleted(), s.t.Length(), s.Stats.Reused, s.Stats.FromSeed
		if s.appBytes != nil {
			e.FromApp = s.appBytes.Load()
		}
		e.FromPeers = max(0, st.BytesReadUsefulData.Int64()-e.FromSeed-e.FromApp)
	}
	return e
}

func getTorrent(ctx context.Context, o Options, cfg nodeapi.BootConfig) (*metainfo.MetaInfo, *metainfo.Info, error) {
	body, err := get(ctx, o.HTTP, cfg.Torrent, 4<<20)
	if err != nil {
		return nil, nil, fmt.Errorf("torrent: %w", err)
	}
	mi, err := metainfo.Load(bytesReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("torrent %s: %w", cfg.Torrent, err)
	}
	if got := mi.HashInfoBytes().HexString(); got != cfg.InfoHash {
		return nil, nil, fmt.Errorf("torrent %s has infohash %s, the boot config says %s", cfg.Torrent, got, cfg.InfoHash)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, nil, fmt.Errorf("torrent %s: %w", cfg.Torrent, err)
	}
	if info.IsDir() || info.TotalLength() != cfg.Size {
		return nil, nil, fmt.Errorf("torrent %s describes %d bytes, the boot config %d", cfg.Torrent, info.TotalLength(), cfg.Size)
	}
	return mi, &info, nil
}
