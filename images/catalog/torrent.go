package catalog

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// Bounds of PieceLength.
const (
	// MinPieceLength is the piece length of images up to 500 MiB. A node
	// passes a piece on only once it holds all of it, so smaller pieces
	// spread through a rack behind slow links sooner: a rack of 100 nodes
	// behind 10 Mbit/s fetching a 64 MiB image (`go run ./bench --only
	// rack --rack-nodes 100 --rack-node-rate 10mbit --rack-appliance-rates
	// 10mbit --rack-image-mib 64 --rack-http-max 0 --rack-hold-memory`,
	// bound 53.7 s) verified in 72.3 and 73.8 s with 128 KiB pieces, 82.9
	// and 84.0 s with 256 KiB. But a node pays for every piece and every
	// request: inside a TCG VM (`--only boot --boot-firmware bios`) the
	// same image took 4.7 s to fetch in 128 KiB pieces against 2.9 s in
	// 256 KiB, and the boot missed its goal.
	MinPieceLength = 256 << 10
	MaxPieceLength = 4 << 20
	// MaxPieces is the most pieces PieceLength aims at; below MaxPieceLength
	// a rootfs has between MaxPieces/2 and MaxPieces pieces (or fewer, when
	// small enough for MinPieceLength).
	MaxPieces = 2000
)

// PieceLength returns the torrent piece length for a file of size bytes on a
// LAN: the smallest power of two from 256 KiB to 4 MiB giving at most 2000
// pieces, hence 1000 to 2000 pieces for files from 500 MiB to about 8 GiB.
// Small pieces start spreading between nodes early; few pieces keep the
// metainfo and the bitfields small.
func PieceLength(size int64) int64 {
	pl := int64(MinPieceLength)
	for pl < MaxPieceLength && size/pl+min(size%pl, 1) > MaxPieces {
		pl *= 2
	}
	return pl
}

// makeTorrent builds the single-file, private torrent of the file at path
// (which has size bytes), named "rootfs", and writes FilePieces and
// FilePiecesBLAKE3 beside the file in the same pass. The bytes hashed are added to read, if not nil.
func makeTorrent(ctx context.Context, path string, size int64, created time.Time, announce, webSeed string, read *atomic.Int64) (*metainfo.MetaInfo, *metainfo.Info, error) {
	private := true
	info := &metainfo.Info{
		Name:        FileRootfs,
		Length:      size,
		PieceLength: PieceLength(size),
		Private:     &private,
	}
	sums := newPieceSums(info.PieceLength, sha256.New())
	b3 := newPieceSums(info.PieceLength, newBLAKE3())
	err := info.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.TeeReader(ctxReader{ctx, f, read}, io.MultiWriter(sums, b3)), f}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	for file, list := range map[string]*pieceSums{FilePieces: sums, FilePiecesBLAKE3: b3} {
		if _, err := createSynced(filepath.Join(filepath.Dir(path), file), func(w io.Writer) error {
			_, err := w.Write(list.Sums())
			return err
		}); err != nil {
			return nil, nil, fmt.Errorf("piece sums %s: %w", file, err)
		}
	}
	ib, err := bencode.Marshal(info)
	if err != nil {
		return nil, nil, err
	}
	mi := &metainfo.MetaInfo{
		InfoBytes:    ib,
		Announce:     announce,
		CreationDate: created.Unix(),
		CreatedBy:    "moobi",
	}
	if webSeed != "" {
		mi.UrlList = metainfo.UrlList{webSeed}
	}
	return mi, info, nil
}
