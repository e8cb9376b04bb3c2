// Package swarmtest holds what the tests of the piece store and of the
// seeder share: random images with their torrent info, and BitTorrent
// clients that listen on loopback only.
package swarmtest

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// Image writes size random bytes to dir/rootfs and returns the file's path,
// its contents, and its torrent info (pieces of pieceLen bytes), encoded
// and hashed.
func Image(t testing.TB, dir string, size int, pieceLen int64) (path string, data, infoBytes []byte, ih metainfo.Hash) {
	t.Helper()
	data = make([]byte, size)
	rand.Read(data)
	path = filepath.Join(dir, "rootfs")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	info := metainfo.Info{PieceLength: pieceLen}
	if err := info.BuildFromFilePath(path); err != nil {
		t.Fatal(err)
	}
	ib, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return path, data, ib, metainfo.HashBytes(ib)
}

// Client starts a client with cfg, listening on 127.0.0.1 only, and closes
// it when the test ends.
func Client(t testing.TB, cfg *torrent.ClientConfig) *torrent.Client {
	t.Helper()
	cfg.ListenHost = func(string) string { return "127.0.0.1" }
	cfg.DisableIPv6 = true
	c, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
