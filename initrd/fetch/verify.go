package fetch

// What the node checks of the image beyond the torrent's own piece hashes.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/anacrolix/torrent/metainfo"

	"moobi/images/piecestore"
	"moobi/nodeapi"
)

// getPieceSums fetches the list of each piece's SHA-256 the boot config
// names and checks it against the config's pieces_sha256.
func getPieceSums(ctx context.Context, o Options, cfg nodeapi.BootConfig, mi *metainfo.MetaInfo) ([][sha256.Size]byte, error) {
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, fmt.Errorf("torrent %s: %w", cfg.Torrent, err)
	}
	body, err := get(ctx, o.HTTP, cfg.Pieces, int64(info.NumPieces())*sha256.Size+1)
	if err != nil {
		return nil, fmt.Errorf("piece sums: %w", err)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != cfg.PiecesSHA256 {
		return nil, fmt.Errorf("piece sums %s: sha256 %x, the boot config says %s", cfg.Pieces, sum, cfg.PiecesSHA256)
	}
	sums, err := piecestore.ParseSums(body, info.NumPieces())
	if err != nil {
		return nil, fmt.Errorf("piece sums %s: %w", cfg.Pieces, err)
	}
	return sums, nil
}

// verifyFile checks the first size bytes of path against a sha256.
func verifyFile(ctx context.Context, path string, size int64, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(ctxReader{ctx, f}, size)); err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("verify %s: sha256 %s, the boot config says %s", path, got, want)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
