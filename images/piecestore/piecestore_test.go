package piecestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/zeebo/blake3"

	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

const pieceLen = 64 << 10

func newClient(t *testing.T) *torrent.Client {
	t.Helper()
	return swarmtest.Client(t, swarm.Config(0, slog.New(slog.NewTextHandler(io.Discard, nil))))
}

// fetchFrom has tor download from seeder until it is complete. The peer is
// offered again every second, as a tracker's next announce would: once, on
// a loaded machine, the leecher got nothing from a single offer in 60 s (its
// one connection failed or was dropped), and with no tracker nothing else
// would bring the seeder back.
func fetchFrom(t *testing.T, tor *torrent.Torrent, seeder *torrent.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		tor.AddPeers([]torrent.PeerInfo{peerOf(seeder)})
		select {
		case <-tor.Complete().On():
			return
		case <-ctx.Done():
			t.Fatalf("not complete: %d of %d bytes", tor.BytesCompleted(), tor.Length())
		case <-tick.C:
		}
	}
}

func peerOf(c *torrent.Client) torrent.PeerInfo {
	addr := c.ListenAddrs()[0].(*net.TCPAddr)
	return torrent.PeerInfo{Addr: addr, Trusted: true}
}

// TestSeedTrustedAndResume seeds a trusted file without hashing it, and
// has a leecher reuse the valid pieces it already holds: only the missing
// and corrupted pieces cross the wire.
func TestSeedTrustedAndResume(t *testing.T) {
	seedDir, leechDir := t.TempDir(), t.TempDir()
	path, data, ib, ih := swarmtest.Image(t, seedDir, 40*pieceLen+1234, pieceLen)

	seeder := newClient(t)
	seed := swarmtest.Add(t, seeder, ib, ih, &File{Path: path, ReadOnly: true, Trusted: true})
	if !seed.Complete().Bool() {
		t.Fatalf("trusted seed not complete at once: %d of %d", seed.BytesCompleted(), seed.Length())
	}

	// The leecher's file already holds the first half; a few of those
	// pieces are corrupted.
	dst := filepath.Join(leechDir, "cache")
	have := bytes.Clone(data[:20*pieceLen])
	have[3*pieceLen+7] ^= 0xff
	have[11*pieceLen] ^= 0x01
	if err := os.WriteFile(dst, have, 0o644); err != nil {
		t.Fatal(err)
	}
	leecher := newClient(t)
	tor := swarmtest.Add(t, leecher, ib, ih, &File{Path: dst})
	tor.DownloadAll()
	fetchFrom(t, tor, seeder)

	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("downloaded file differs from the image")
	}
	st := tor.Stats()
	read := st.BytesReadUsefulData.Int64()
	wantMax := int64(len(data) - 18*pieceLen) // 18 valid pieces reused
	if read > wantMax || read < wantMax-pieceLen {
		t.Fatalf("downloaded %d bytes, want about %d (18 of 20 cached pieces reused)", read, wantMax)
	}
}

// TestForgetRehashes alters the seeded file and shows that after Forget
// and a verification the altered piece is no longer offered as complete.
func TestForgetRehashes(t *testing.T) {
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 8*pieceLen, pieceLen)
	c := newClient(t)
	st := &File{Path: path, ReadOnly: true, Trusted: true}
	tor := swarmtest.Add(t, c, ib, ih, st)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage"), 5*pieceLen+100)
	f.Close()
	st.Forget()
	if err := tor.VerifyData(); err != nil {
		t.Fatal(err)
	}
	if tor.Complete().Bool() {
		t.Fatal("torrent still complete after one of its pieces changed")
	}
	for i := 0; i < tor.NumPieces(); i++ {
		if got, want := tor.PieceState(i).Complete, i != 5; got != want {
			t.Errorf("piece %d complete=%v, want %v", i, got, want)
		}
	}
}

func TestReadOnlyTooShort(t *testing.T) {
	path, _, ib, _ := swarmtest.Image(t, t.TempDir(), 4*pieceLen, pieceLen)
	os.Truncate(path, pieceLen)
	var info metainfo.Info
	if err := bencode.Unmarshal(ib, &info); err != nil {
		t.Fatal(err)
	}
	st := &File{Path: path, ReadOnly: true, Trusted: true}
	if _, err := st.OpenTorrent(context.Background(), &info, metainfo.Hash{}); err == nil {
		t.Fatal("a truncated read-only file opened as the torrent's storage")
	}
}

// TestFreshPieces: pieces wholly past the end the file had when opened are
// known missing without hashing; every piece the file held, even in part,
// is left for the torrent client to hash, garbage included.
func TestFreshPieces(t *testing.T) {
	const pieces = 8
	_, _, ib, ih := swarmtest.Image(t, t.TempDir(), pieces*pieceLen, pieceLen)
	garbage := bytes.Repeat([]byte("not the image "), pieces*pieceLen/14+1)[:pieces*pieceLen]
	for _, tc := range []struct {
		name    string
		offset  int64
		held    []byte // nil: no file at all
		unknown []int
	}{
		{name: "no file", unknown: nil},
		{name: "empty file", held: []byte{}, unknown: nil},
		{name: "two and a half pieces of garbage", held: garbage[:5*pieceLen/2], unknown: []int{0, 1, 2}},
		{name: "the whole length in garbage", held: garbage, unknown: []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{name: "region of a device-like file", offset: 1000, held: garbage[:1000+pieceLen], unknown: []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache")
			if tc.held != nil {
				if err := os.WriteFile(path, tc.held, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			st := &File{Path: path, Offset: tc.offset}
			tor := swarmtest.Add(t, newClient(t), ib, ih, st)
			if got := st.Unknown(); !slices.Equal(got, tc.unknown) {
				t.Fatalf("pieces to hash %v, want %v", got, tc.unknown)
			}
			if err := tor.VerifyData(); err != nil {
				t.Fatal(err)
			}
			for i := range pieces {
				if tor.PieceState(i).Complete {
					t.Errorf("piece %d complete, but the file holds garbage or nothing there", i)
				}
			}
			if len(tc.held) > 0 {
				// What the file held stays until overwritten.
				got, _ := os.ReadFile(path)
				if !bytes.Equal(got[:len(tc.held)], tc.held) {
					t.Error("opening the file changed what it held")
				}
			}
		})
	}
}

// sums is the SHA-256 of each pieceLen piece of data.
func sums(data []byte) [][sha256.Size]byte { return sumsWith(data, sha256.Sum256) }

// sumsWith is the sum of each pieceLen piece of data.
func sumsWith(data []byte, sum func([]byte) [32]byte) [][32]byte {
	var out [][32]byte
	for off := 0; off < len(data); off += pieceLen {
		out = append(out, sum(data[off:min(off+pieceLen, len(data))]))
	}
	return out
}

// TestCheckedPieces: with File.SHA256 (or File.BLAKE3) set, the list
// decides which pieces are complete, not the torrent's SHA-1: bytes that
// match their sum are kept, others are not, and a list of the wrong length
// is refused.
func TestCheckedPieces(t *testing.T) {
	const pieces = 8
	path, data, ib, ih := swarmtest.Image(t, t.TempDir(), pieces*pieceLen-100, pieceLen)
	other := bytes.Clone(data)
	other[2*pieceLen+9] ^= 0x40 // piece 2 differs from the torrent's
	garbled := bytes.Clone(data)
	garbled[6*pieceLen] ^= 0x01 // piece 6 differs from both lists
	for _, alg := range []struct {
		name  string
		sum   func([]byte) [32]byte
		store func(path string, list [][32]byte) *File
	}{
		{"SHA-256", sha256.Sum256, func(p string, l [][32]byte) *File { return &File{Path: p, SHA256: l} }},
		{"BLAKE3", blake3.Sum256, func(p string, l [][32]byte) *File { return &File{Path: p, BLAKE3: l} }},
	} {
		sums := func(b []byte) [][32]byte { return sumsWith(b, alg.sum) }
		for _, tc := range []struct {
			name     string
			file     []byte
			list     [][32]byte
			complete func(i int) bool
		}{
			{"the image and its list", data, sums(data), func(i int) bool { return true }},
			{"the image, one piece of the list wrong", data, sums(other), func(i int) bool { return i != 2 }},
			{"another piece and the list that matches it", other, sums(other), func(i int) bool { return true }},
			{"a garbled piece", garbled, sums(data), func(i int) bool { return i != 6 }},
		} {
			t.Run(alg.name+"/"+tc.name, func(t *testing.T) {
				p := filepath.Join(t.TempDir(), "cache")
				if err := os.WriteFile(p, tc.file, 0o644); err != nil {
					t.Fatal(err)
				}
				tor := swarmtest.Add(t, newClient(t), ib, ih, alg.store(p, tc.list))
				if err := tor.VerifyData(); err != nil {
					t.Fatal(err)
				}
				for i := range pieces {
					if got, want := tor.PieceState(i).Complete, tc.complete(i); got != want {
						t.Errorf("piece %d complete=%v, want %v", i, got, want)
					}
				}
			})
		}
	}
	// Each list is checked with its own hash: SHA-256 sums given as
	// BLAKE3 ones match no piece.
	p := filepath.Join(t.TempDir(), "cache")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tor := swarmtest.Add(t, newClient(t), ib, ih, &File{Path: p, BLAKE3: sums(data)})
	if err := tor.VerifyData(); err != nil {
		t.Fatal(err)
	}
	for i := range pieces {
		if tor.PieceState(i).Complete {
			t.Errorf("piece %d complete against SHA-256 sums read as BLAKE3", i)
		}
	}
	var info metainfo.Info
	if err := bencode.Unmarshal(ib, &info); err != nil {
		t.Fatal(err)
	}
	st := &File{Path: path, ReadOnly: true, SHA256: sums(data)[:pieces-1]}
	if _, err := st.OpenTorrent(context.Background(), &info, ih); err == nil || !strings.Contains(err.Error(), "7 piece sums for a torrent of 8 pieces") {
		t.Fatalf("a short list: %v", err)
	}
	st = &File{Path: path, ReadOnly: true, BLAKE3: sumsWith(data, blake3.Sum256)[:pieces-1]}
	if _, err := st.OpenTorrent(context.Background(), &info, ih); err == nil || !strings.Contains(err.Error(), "7 piece sums for a torrent of 8 pieces") {
		t.Fatalf("a short BLAKE3 list: %v", err)
	}
	st = &File{Path: path, ReadOnly: true, SHA256: sums(data), BLAKE3: sumsWith(data, blake3.Sum256)}
	if _, err := st.OpenTorrent(context.Background(), &info, ih); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("both lists: %v", err)
	}
}

// TestCheckedDownload: a leecher checking pieces against their SHA-256
// downloads the image from a seeder.
func TestCheckedDownload(t *testing.T) {
	path, data, ib, ih := swarmtest.Image(t, t.TempDir(), 20*pieceLen+77, pieceLen)
	seeder := newClient(t)
	swarmtest.Add(t, seeder, ib, ih, &File{Path: path, ReadOnly: true, Trusted: true})
	dst := filepath.Join(t.TempDir(), "cache")
	tor := swarmtest.Add(t, newClient(t), ib, ih, &File{Path: dst, SHA256: sums(data)})
	tor.DownloadAll()
	fetchFrom(t, tor, seeder)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("downloaded file differs from the image")
	}
}

func TestParseSums(t *testing.T) {
	b := bytes.Repeat([]byte{7}, 3*sha256.Size)
	if s, err := ParseSums(b, 3); err != nil || len(s) != 3 || s[2][31] != 7 {
		t.Fatalf("ParseSums: %v, %v", s, err)
	}
	for _, n := range []int{0, 2, 4} {
		if _, err := ParseSums(b, n); err == nil {
			t.Errorf("%d bytes read as %d pieces' sums", len(b), n)
		}
	}
}

func FuzzParseSums(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 64), 2)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		s, err := ParseSums(b, n)
		if err == nil && (len(s) != n || len(b) != n*sha256.Size) {
			t.Fatalf("%d bytes parsed as %d sums for %d pieces", len(b), len(s), n)
		}
	})
}
