package fetch

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/zeebo/blake3"

	"moobi/bootsign"
	"moobi/boottoken"
	"moobi/images/swarm/swarmtest"
	"moobi/nodeapi"
)

// fakeAppliance serves what a node needs from the appliance: boot config,
// torrent and the rootfs as web seed (with Range), and records events. Its
// tracker URL points at a closed port: no peer will ever be found.
type fakeAppliance struct {
	srv    *httptest.Server
	rootfs []byte
	mu     sync.Mutex
	events []nodeapi.Event
	served int64 // web seed bytes
	broken bool  // the web seed answers 500
	// wrongSHA makes the boot config carry a sha256 the image does not have.
	wrongSHA bool
	// key signs the boot configs; each fake appliance has its own.
	key ed25519.PrivateKey
	// doctor, if set, changes the signed boot config before it is sent:
	// its body and its signature header ("" for none).
	doctor func(body []byte, header string) ([]byte, string)
	// torrent is what /t serves; torrentGets counts its requests.
	torrent     []byte
	torrentGets int
	// tracker, if set, answers /announce and the boot config names it.
	tracker http.Handler
	// mi is the image's torrent.
	mi metainfo.MetaInfo
	// path is the image file.
	path string
	// eventsDown makes event posts fail with 503, as an appliance that is
	// restarting would.
	eventsDown bool
	// pieces makes the boot config name each piece's SHA-256 (/pieces),
	// and with blake3 each piece's BLAKE3 too (/pieces.blake3); badPieces
	// makes both serve a list other than the signed one.
	pieces, blake3, badPieces bool
}

func (a *fakeAppliance) pub() ed25519.PublicKey { return a.key.Public().(ed25519.PublicKey) }

func (a *fakeAppliance) breakWebSeed() {
	a.mu.Lock()
	a.broken = true
	a.mu.Unlock()
}

func newFakeAppliance(t *testing.T, size int) *fakeAppliance {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a := &fakeAppliance{key: key}
	path, rootfs, ib, _ := swarmtest.Image(t, t.TempDir(), size, 256<<10)
	a.rootfs = rootfs
	mi := metainfo.MetaInfo{InfoBytes: ib}
	a.torrent, _ = bencode.Marshal(mi)
	a.mi, a.path = mi, path
	sum := sha256.Sum256(a.rootfs)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadTracker := "http://" + closed.Addr().String() + "/announce"
	closed.Close()
	mux := http.NewServeMux()
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	mux.HandleFunc("GET /v1/nodes/{mac}/boot", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		sum := sum
		if a.wrongSHA {
			sum[0] ^= 0xff
		}
		tracker := deadTracker
		if a.tracker != nil {
			tracker = a.srv.URL + "/announce"
		}
		cfg := nodeapi.BootConfig{
			Name: "node01", MAC: r.PathValue("mac"), Image: "web", Version: "v1",
			Torrent: a.srv.URL + "/t", InfoHash: mi.HashInfoBytes().HexString(),
			Size: int64(size), SHA256: hex.EncodeToString(sum[:]),
			WebSeed: a.srv.URL + "/rootfs", Tracker: tracker,
			Nonce: r.Header.Get(nodeapi.NonceHeader), Boot: r.Header.Get(boottoken.Header),
		}
		if a.pieces {
			ps := sha256.Sum256(pieceSums(a.rootfs))
			cfg.Pieces, cfg.PiecesSHA256 = a.srv.URL+"/pieces", hex.EncodeToString(ps[:])
			if a.blake3 {
				ps := sha256.Sum256(pieceSumsWith(a.rootfs, blake3.Sum256))
				cfg.PiecesBLAKE3, cfg.PiecesBLAKE3SHA256 = a.srv.URL+"/pieces.blake3", hex.EncodeToString(ps[:])
			}
		}
		body, _ := json.Marshal(cfg)
		body = append(body, '\n')
		header := bootsign.NewSigner(a.key).Sign(body)
		if a.doctor != nil {
			body, header = a.doctor(body, header)
		}
		a.mu.Unlock()
		if header != "" {
			w.Header().Set(bootsign.Header, header)
		}
		w.Write(body)
	})
	mux.HandleFunc("GET /t", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.torrentGets++
		t := a.torrent
		a.mu.Unlock()
		w.Write(t)
	})
	for path, sum := range map[string]func([]byte) [32]byte{"/pieces": sha256.Sum256, "/pieces.blake3": blake3.Sum256} {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			list := pieceSumsWith(a.rootfs, sum)
			a.mu.Lock()
			if a.badPieces {
				list[0] ^= 0xff
			}
			a.mu.Unlock()
			w.Write(list)
		})
	}
	mux.HandleFunc("GET /rootfs", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		broken := a.broken
		a.mu.Unlock()
		if broken {
			http.Error(w, "disk error", http.StatusInternalServerError)
			return
		}
		cw := &countWriter{ResponseWriter: w}
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(a.rootfs))
		a.mu.Lock()
		a.served += cw.n
		a.mu.Unlock()
	})
	mux.HandleFunc("GET /announce", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		tr := a.tracker
		a.mu.Unlock()
		if tr == nil {
			http.NotFound(w, r)
			return
		}
		tr.ServeHTTP(w, r)
	})
	mux.HandleFunc("POST /v1/nodes/{mac}/events", func(w http.ResponseWriter, r *http.Request) {
		e, err := nodeapi.DecodeEvent(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.eventsDown {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		a.events = append(a.events, e)
		w.WriteHeader(204)
	})
	return a
}

// pieceSums is the SHA-256 of each 256 KiB piece of data, as the catalog
// writes them.
func pieceSums(data []byte) []byte { return pieceSumsWith(data, sha256.Sum256) }

func pieceSumsWith(data []byte, sum func([]byte) [32]byte) []byte {
	var out []byte
	for off := 0; off < len(data); off += 256 << 10 {
		s := sum(data[off:min(off+256<<10, len(data))])
		out = append(out, s[:]...)
	}
	return out
}

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (a *fakeAppliance) states() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var s []string
	for _, e := range a.events {
		if len(s) == 0 || s[len(s)-1] != e.State {
			s = append(s, e.State)
		}
	}
	return s
}

func opts(a *fakeAppliance, dir string) Options {
	mac, _ := net.ParseMAC("52:54:00:12:34:01")
	return Options{Server: a.srv.URL, MAC: mac, Dir: dir, PublicKey: a.pub(), WebSeedAfter: time.Second, ProgressEvery: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestWebSeedOnly: no peer exists and the tracker is unreachable; the
// download still completes from the web seed, verifies, and a second fetch
// into the same cache reuses everything.
func TestWebSeedOnly(t *testing.T) {
	a := newFakeAppliance(t, 3<<20+777)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Fetch(ctx, opts(a, dir))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(s.Path)
	if !bytes.Equal(got, a.rootfs) {
		t.Fatal("fetched rootfs differs")
	}
	if s.Stats.FromSeed < int64(len(a.rootfs)) || s.Stats.Reused != 0 {
		t.Fatalf("stats %+v: want the whole image from the web seed", s.Stats)
	}
	// The web seed is on the appliance's address, but it is not its
	// seeder: nothing counts as from the seeder or from peers.
	if s.Stats.FromApp != 0 || s.Stats.FromPeers != 0 {
		t.Fatalf("stats %+v: want nothing from the appliance's seeder or from peers", s.Stats)
	}
	s.Close()
	if got := strings.Join(a.states(), ","); got != "fetching,verified" {
		t.Fatalf("events %s, want fetching,verified", got)
	}

	before := a.served
	s, err = Fetch(ctx, opts(a, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Stats.Reused != int64(len(a.rootfs)) || a.served != before {
		t.Fatalf("second fetch: stats %+v, web seed served %d more bytes; want everything reused", s.Stats, a.served-before)
	}
}

// TestVerifiedReportedWhenBack: the appliance cannot take events while the
// node downloads and verifies; the node does not give up, and its verified
// event reaches the appliance once it is back.
func TestVerifiedReportedWhenBack(t *testing.T) {
	a := newFakeAppliance(t, 1<<20+333)
	a.eventsDown = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Fetch(ctx, opts(a, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := a.states(); len(got) != 0 {
		t.Fatalf("events %v reached an appliance that was down", got)
	}
	a.mu.Lock()
	a.eventsDown = false
	a.mu.Unlock()
	for !slices.Contains(a.states(), nodeapi.StateVerified) {
		select {
		case <-ctx.Done():
			t.Fatal("the verified event never reached the appliance once it was back")
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Close waits for the background sender, so whatever it would still
	// send has reached the appliance by now. That it sends nothing once an
	// event is heard, however long the node runs, is TestReportUntilHeard's.
	s.Close()
	if got := a.states(); got[len(got)-1] != nodeapi.StateVerified {
		t.Fatalf("events after the verified one was heard: %v", got)
	}
}

// TestCorruptCache: bytes flipped in the cache are detected and fetched
// again; the other pieces are reused.
func TestCorruptCache(t *testing.T) {
	a := newFakeAppliance(t, 4<<20)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Fetch(ctx, opts(a, dir))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, _ := os.OpenFile(s.Path, os.O_WRONLY, 0)
	f.WriteAt([]byte{0xde, 0xad}, 1<<20+5)
	f.Close()
	s, err = Fetch(ctx, opts(a, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want := int64(len(a.rootfs)) - 256<<10; s.Stats.Reused != want {
		t.Fatalf("reused %d bytes, want %d (all but the corrupted piece)", s.Stats.Reused, want)
	}
	got, _ := os.ReadFile(s.Path)
	if !bytes.Equal(got, a.rootfs) {
		t.Fatal("corrupted cache not repaired")
	}
}

// TestWrongTorrent: a torrent that does not match the boot config's
// infohash is refused, and the failure is reported to the appliance.
func TestWrongTorrent(t *testing.T) {
	a := newFakeAppliance(t, 1<<20)
	other := newFakeAppliance(t, 1<<20)
	o := opts(a, t.TempDir())
	o.defaults()
	cfg, err := GetBootConfig(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Torrent = other.srv.URL + "/t"
	_, _, err = getTorrent(context.Background(), o, cfg)
	if err == nil || !strings.Contains(err.Error(), "infohash") {
		t.Fatalf("err %v, want an infohash mismatch", err)
	}
}

// TestNoPeerNoWebSeed: the tracker is unreachable and the web seed fails:
// the fetch gives up with a clear error and reports a failed event.
func TestNoPeerNoWebSeed(t *testing.T) {
	a := newFakeAppliance(t, 1<<20)
	a.breakWebSeed()
	o := opts(a, t.TempDir())
	o.StallTimeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := Fetch(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "no peer and no web seed") {
		t.Fatalf("err %v, want a stall error", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	last := a.events[len(a.events)-1]
	if last.State != nodeapi.StateFailed || !strings.Contains(last.Reason, "stalled") {
		t.Fatalf("last event %+v, want failed with the reason", last)
	}
}

// TestVerificationFails: the pieces all check out but the whole file does
// not match the boot config's sha256: the fetch fails and says so.
func TestVerificationFails(t *testing.T) {
	a := newFakeAppliance(t, 1<<20)
	a.mu.Lock()
	a.wrongSHA = true
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := Fetch(ctx, opts(a, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("err %v, want a sha256 mismatch", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if last := a.events[len(a.events)-1]; last.State != nodeapi.StateFailed || !strings.Contains(last.Reason, "sha256") {
		t.Fatalf("last event %+v, want failed with the reason", last)
	}
}
