package fetch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
	"moobi/images/tracker"
)

// TestLyingPeer: the only peer in the swarm claims the whole image but
// serves garbage (a corrupted copy it trusts without hashing). The node
// finds every bad piece, drops what the liar sent, gets the image from the
// web seed, and the image is right: with the torrent's SHA-1 piece hashes
// and with the signed piece SHA-256s.
func TestLyingPeer(t *testing.T) {
	for _, pieces := range []bool{false, true} {
		t.Run(fmt.Sprintf("pieces_sha256=%v", pieces), func(t *testing.T) { lyingPeer(t, pieces) })
	}
}

func lyingPeer(t *testing.T, pieces bool) {
	a := newFakeAppliance(t, 2<<20+333)
	a.pieces = pieces
	a.tracker = tracker.New(tracker.Options{Interval: time.Second, MinInterval: time.Second, Known: func([20]byte) bool { return true }})

	// The liar: a real BitTorrent client seeding a corrupted copy.
	bad := bytes.Clone(a.rootfs)
	for i := 0; i < len(bad); i += 4096 {
		bad[i] ^= 0x5a
	}
	badPath := filepath.Join(t.TempDir(), "rootfs")
	if err := os.WriteFile(badPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := swarm.Config(0, slog.New(slog.DiscardHandler))
	liar, err := swarm.NewClient(swarmtest.Loopback(cfg), swarm.HandshakeLimits())
	if err != nil {
		t.Fatal(err)
	}
	defer liar.Close()
	lt := swarmtest.Add(t, liar, a.mi.InfoBytes, a.mi.HashInfoBytes(), &piecestore.File{Path: badPath, ReadOnly: true, Trusted: true})
	lt.AddTrackers([][]string{{a.srv.URL + "/announce"}})
	lt.DownloadAll()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o := opts(a, t.TempDir())
	o.WebSeedAfter = 3 * time.Second
	s, err := Fetch(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := os.ReadFile(s.Path)
	if !bytes.Equal(got, a.rootfs) {
		t.Fatal("fetched image differs from the original")
	}
	st := lt.Stats()
	sent := st.BytesWrittenData.Int64()
	t.Logf("the liar sent %d bytes of garbage; the web seed served %d bytes", sent, s.Stats.FromSeed)
	if sent == 0 {
		t.Fatal("the liar sent nothing: the test did not exercise a lying peer")
	}
	if s.Stats.FromSeed < int64(len(a.rootfs))/2 {
		t.Errorf("web seed served %d bytes; the good image must have come from it", s.Stats.FromSeed)
	}
}
