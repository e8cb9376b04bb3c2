package fetch

// What the node checks of the image beyond the torrent's own piece hashes.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"moobi/images/piecestore"
)

// getPieceSums fetches a list of each piece's hash (SHA-256 or BLAKE3,
// 32 bytes a piece, for a torrent of n pieces) from url and checks the
// list against its SHA-256 the signed boot config pins (listSHA256).
func getPieceSums(ctx context.Context, o Options, url, listSHA256 string, n int) ([][32]byte, error) {
	body, err := get(ctx, o.HTTP, url, int64(n)*32+1)
	if err != nil {
		return nil, fmt.Errorf("piece sums: %w", err)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != listSHA256 {
		return nil, fmt.Errorf("piece sums %s: sha256 %x, the boot config says %s", url, sum, listSHA256)
	}
	sums, err := piecestore.ParseSums(body, n)
	if err != nil {
		return nil, fmt.Errorf("piece sums %s: %w", url, err)
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
