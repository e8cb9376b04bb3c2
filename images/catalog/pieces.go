package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/zeebo/blake3"
)

// FilePieces holds the SHA-256 of each piece of a version's rootfs, in the
// torrent's piece length: 32 bytes a piece, in order. A node checks each
// piece it receives against it (and the file itself against the boot
// config's pieces_sha256), so that it hashes every byte once, with SHA-256.
// Versions published before it existed have none.
const FilePieces = "rootfs.pieces"

// FilePiecesBLAKE3 is the same list with each piece's BLAKE3 (256-bit)
// instead: what a node of this version checks pieces against (the boot
// config's pieces_blake3 and pieces_blake3_sha256), as BLAKE3 costs a node
// about 60 % of SHA-256's CPU (64 MiB: 0.53 against 0.92 s in a TCG VM's
// CPU, 21 against 36 ms natively with SHA extensions). FilePieces stays
// for nodes of earlier versions.
const FilePiecesBLAKE3 = "rootfs.pieces.blake3"

// pieceSums computes a hash of each pieceLen-byte piece of what is
// written to it.
type pieceSums struct {
	pieceLen int64
	h        hash.Hash
	n        int64 // bytes of the current piece so far
	sums     []byte
}

func newPieceSums(pieceLen int64, h hash.Hash) *pieceSums {
	return &pieceSums{pieceLen: pieceLen, h: h}
}

func newBLAKE3() hash.Hash { return blake3.New() }

func (p *pieceSums) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		k := min(int64(len(b)), p.pieceLen-p.n)
		p.h.Write(b[:k])
		p.n += k
		b = b[k:]
		if p.n == p.pieceLen {
			p.sums, p.n = p.h.Sum(p.sums), 0
			p.h.Reset()
		}
	}
	return total, nil
}

// Sums returns the list, the last (short) piece included.
func (p *pieceSums) Sums() []byte {
	if p.n > 0 {
		p.sums, p.n = p.h.Sum(p.sums), 0
		p.h.Reset()
	}
	return p.sums
}

// PiecesSHA256 returns the SHA-256 (hex) of a version's piece list (file
// is FilePieces or FilePiecesBLAKE3); the error wraps ErrNotFound for a
// version published without one.
func (c *Catalog) PiecesSHA256(name, version, file string) (string, error) {
	if file != FilePieces && file != FilePiecesBLAKE3 {
		return "", fmt.Errorf("%w: %q is not a piece list", ErrNotFound, file)
	}
	p, err := c.Path(name, version, file)
	if err != nil {
		return "", err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
