// Package piecestore is BitTorrent storage for one image file: the torrent's
// single file lives at a fixed path (and offset), which lets a node reuse
// whatever a previous boot left there and lets the appliance seed a
// published rootfs in place.
//
// Completion is kept in memory. A piece's completion starts unknown, so the
// torrent client hashes it before use (existing data is reused only when it
// verifies); when the caller holds proof the file is unchanged since it was
// last verified, Trusted marks every piece complete without hashing. A
// piece that lies wholly past the end the file had when it was opened is
// known incomplete from the start, without hashing: the file was grown to
// the torrent's length (or created) here, and such a piece reads as zeros.
// So a fresh cache costs no hashing at all, and a cache file an earlier boot
// left hashes only what it held.
package piecestore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/zeebo/blake3"
)

// File stores a single-file torrent at Path, starting at Offset.
type File struct {
	Path string
	// Offset is where the torrent's data starts in Path (a region of a
	// device, or 0 for a plain file).
	Offset int64
	// ReadOnly opens Path read-only: for seeding, never downloading.
	ReadOnly bool
	// Trusted reports every piece complete without hashing.
	Trusted bool
	// OnPiece, if set, is called when a piece is marked complete or not.
	OnPiece func(piece int, complete bool)
	// SHA256, if set, holds each piece's SHA-256: pieces are checked
	// against it instead of the torrent's SHA-1 (see checkedPiece).
	SHA256 [][sha256.Size]byte
	// BLAKE3, if set instead, holds each piece's BLAKE3 (256-bit), used
	// the same way.
	BLAKE3 [][blake3Size]byte

	mu      sync.Mutex
	torrent *fileTorrent
}

var _ storage.ClientImpl = (*File)(nil)

// OpenTorrent implements storage.ClientImpl.
func (f *File) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	if info.IsDir() {
		return storage.TorrentImpl{}, fmt.Errorf("piecestore: torrent %q has several files; images are single files", info.Name)
	}
	length := info.TotalLength()
	flag := os.O_RDWR | os.O_CREATE
	if f.ReadOnly {
		flag = os.O_RDONLY
	}
	fh, err := os.OpenFile(f.Path, flag, 0o644)
	if err != nil {
		return storage.TorrentImpl{}, fmt.Errorf("piecestore: open %s: %w", f.Path, err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return storage.TorrentImpl{}, fmt.Errorf("piecestore: stat %s: %w", f.Path, err)
	}
	// Pieces from fresh on read as zeros: past the file's end, or the file
	// is not a regular one (a device: nothing is known of its bytes).
	fresh := int64(math.MaxInt64)
	if st.Mode().IsRegular() {
		fresh = st.Size()
	}
	if st.Mode().IsRegular() && st.Size() < f.Offset+length {
		if f.ReadOnly {
			fh.Close()
			return storage.TorrentImpl{}, fmt.Errorf("piecestore: %s holds %d bytes, the torrent needs %d", f.Path, st.Size(), f.Offset+length)
		}
		// Grow (never shrink) so that what an earlier boot left stays.
		if err := fh.Truncate(f.Offset + length); err != nil {
			fh.Close()
			return storage.TorrentImpl{}, fmt.Errorf("piecestore: size %s: %w", f.Path, err)
		}
	}
	if f.SHA256 != nil && f.BLAKE3 != nil {
		fh.Close()
		return storage.TorrentImpl{}, errors.New("piecestore: both SHA-256 and BLAKE3 piece sums given; pieces are checked against one list")
	}
	sums, sum := f.SHA256, sha256.Sum256
	if f.BLAKE3 != nil {
		sums, sum = f.BLAKE3, blake3.Sum256
	}
	if sums != nil && len(sums) != info.NumPieces() {
		fh.Close()
		return storage.TorrentImpl{}, fmt.Errorf("piecestore: %d piece sums for a torrent of %d pieces", len(sums), info.NumPieces())
	}
	t := &fileTorrent{f: f, fh: fh, info: info, state: make([]g.Option[bool], info.NumPieces())}
	for i := range t.state {
		switch {
		case f.Trusted:
			t.state[i] = g.Some(true)
		case f.Offset+info.Piece(i).Offset() >= fresh:
			t.state[i] = g.Some(false)
		}
	}
	f.mu.Lock()
	f.torrent = t
	f.mu.Unlock()
	return storage.TorrentImpl{
		Piece: func(p metainfo.Piece) storage.PieceImpl {
			pc := piece{t: t, index: p.Index(), off: p.Offset(), len: p.Length()}
			if sums != nil {
				return &checkedPiece{piece: pc, want: sums[pc.index], sum: sum, v1: p.V1Hash().UnwrapOr(metainfo.Hash{})}
			}
			return &pc
		},
		Close: t.close,
	}, nil
}

// Sync flushes what was written so far to the file or device: pieces a
// crash would otherwise lose need not be fetched again.
func (f *File) Sync() error {
	f.mu.Lock()
	t := f.torrent
	f.mu.Unlock()
	if t == nil || f.ReadOnly {
		return nil
	}
	return t.fh.Sync()
}

// Forget drops what is known of every piece's completion, so that the
// torrent client hashes them again (after the file changed under it).
func (f *File) Forget() {
	f.mu.Lock()
	t := f.torrent
	f.mu.Unlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.state {
		t.state[i] = g.None[bool]()
	}
}

// Unknown lists the pieces whose completion is not known: those the torrent
// client must hash before it can tell whether the file holds them.
func (f *File) Unknown() []int {
	f.mu.Lock()
	t := f.torrent
	f.mu.Unlock()
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []int
	for i, s := range t.state {
		if !s.Ok {
			out = append(out, i)
		}
	}
	return out
}

type fileTorrent struct {
	f    *File
	fh   *os.File
	info *metainfo.Info

	mu    sync.Mutex
	state []g.Option[bool]
	// bufs holds piece-sized buffers for checkedPiece.SelfHash.
	bufs sync.Pool
}

func (t *fileTorrent) close() error {
	if t.f.ReadOnly {
		return t.fh.Close()
	}
	errSync := t.fh.Sync()
	return errors.Join(errSync, t.fh.Close())
}

func (t *fileTorrent) set(i int, complete bool) {
	t.mu.Lock()
	t.state[i] = g.Some(complete)
	t.mu.Unlock()
	if t.f.OnPiece != nil {
		t.f.OnPiece(i, complete)
	}
}

type piece struct {
	t        *fileTorrent
	index    int
	off, len int64
}

func (p *piece) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.len {
		return 0, fmt.Errorf("piecestore: read at %d beyond piece %d of %d bytes", off, p.index, p.len)
	}
	if rest := p.len - off; int64(len(b)) > rest {
		b = b[:rest]
	}
	return p.t.fh.ReadAt(b, p.t.f.Offset+p.off+off)
}

func (p *piece) WriteAt(b []byte, off int64) (int, error) {
	if p.t.f.ReadOnly {
		return 0, fmt.Errorf("piecestore: %s is read-only", p.t.f.Path)
	}
	if off+int64(len(b)) > p.len {
		return 0, fmt.Errorf("piecestore: write of %d bytes at %d overruns piece %d", len(b), off, p.index)
	}
	return p.t.fh.WriteAt(b, p.t.f.Offset+p.off+off)
}

func (p *piece) MarkComplete() error    { p.t.set(p.index, true); return nil }
func (p *piece) MarkNotComplete() error { p.t.set(p.index, false); return nil }

func (p *piece) Completion() storage.Completion {
	p.t.mu.Lock()
	defer p.t.mu.Unlock()
	s := p.t.state[p.index]
	return storage.Completion{Ok: s.Ok, Complete: s.Ok && s.Value}
}

// checkedPiece is a piece checked against its SHA-256 in File.SHA256. It
// implements storage.SelfHashing: anacrolix/torrent (v1.61.0,
// Torrent.hashPiece) then calls SelfHash instead of computing the piece's
// SHA-1, and keeps the piece if what SelfHash returns is the torrent's
// SHA-1 for it. So each byte is hashed once, with SHA-256. The library's
// smart ban (which of several peers sent a failed piece's bad block) needs
// its own hashing and does not run for such pieces; a failed piece is
// still discarded and fetched again.
type checkedPiece struct {
	piece
	want [sha256.Size]byte
	sum  func([]byte) [32]byte // sha256.Sum256 or blake3.Sum256
	v1   metainfo.Hash         // the torrent's SHA-1 of the piece
}

// blake3Size is the size of the BLAKE3 sums File.BLAKE3 holds.
const blake3Size = 32

var _ storage.SelfHashing = (*checkedPiece)(nil)

// SelfHash returns the torrent's SHA-1 for the piece if the piece's bytes
// have the sum in File.SHA256 (or File.BLAKE3), and a different hash
// otherwise.
func (p *checkedPiece) SelfHash() (metainfo.Hash, error) {
	// One read per piece: io.Copy's 32 KiB reads cost a system call per
	// 32 KiB, 8,192 for a 256 MiB image (0.16 s of a node's 1.4 s, profiled).
	bp, _ := p.t.bufs.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < p.len {
		bp = new(make([]byte, p.len))
	}
	defer p.t.bufs.Put(bp)
	b := (*bp)[:p.len]
	if _, err := p.t.fh.ReadAt(b, p.t.f.Offset+p.off); err != nil {
		return metainfo.Hash{}, fmt.Errorf("piecestore: hash piece %d: %w", p.index, err)
	}
	if p.sum(b) == p.want {
		return p.v1, nil
	}
	bad := p.v1
	bad[0] ^= 0xff
	return bad, nil
}

// ParseSums reads a list of piece SHA-256s (32 bytes a piece, in order)
// for a torrent of n pieces.
func ParseSums(b []byte, n int) ([][sha256.Size]byte, error) {
	if n <= 0 || len(b)%sha256.Size != 0 || len(b)/sha256.Size != n {
		return nil, fmt.Errorf("piece sums: %d bytes, want %d bytes (32 each) for %d pieces", len(b), int64(n)*sha256.Size, n)
	}
	out := make([][sha256.Size]byte, n)
	for i := range out {
		out[i] = [sha256.Size]byte(b[i*sha256.Size:])
	}
	return out, nil
}
