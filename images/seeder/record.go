package seeder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// record proves a rootfs verified once and has not changed since: the
// identity the kernel keeps for the file. Writing to a file changes its
// ctime, and nothing can set ctime back, so a matching record means the
// bytes are those that were hashed.
type record struct {
	InfoHash string    `json:"infohash"`
	Size     int64     `json:"size"`
	Dev      uint64    `json:"dev"`
	Ino      uint64    `json:"ino"`
	MtimeNs  int64     `json:"mtime_ns"`
	CtimeNs  int64     `json:"ctime_ns"`
	Verified time.Time `json:"verified"`
}

func statRecord(path, infohash string) (record, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return record{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return record{
		InfoHash: infohash,
		Size:     st.Size,
		Dev:      uint64(st.Dev),
		Ino:      st.Ino,
		MtimeNs:  st.Mtim.Nano(),
		CtimeNs:  st.Ctim.Nano(),
	}, nil
}

func (r record) sameFile(o record) bool {
	return r.InfoHash == o.InfoHash && r.Size == o.Size && r.Dev == o.Dev && r.Ino == o.Ino && r.MtimeNs == o.MtimeNs && r.CtimeNs == o.CtimeNs
}

func recordPath(dir, infohash string) string { return filepath.Join(dir, infohash+".json") }

func loadRecord(dir, infohash string) (record, bool) {
	b, err := os.ReadFile(recordPath(dir, infohash))
	if err != nil {
		return record{}, false
	}
	var r record
	if json.Unmarshal(b, &r) != nil {
		return record{}, false
	}
	return r, true
}

func saveRecord(dir string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := recordPath(dir, r.InfoHash) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write completion record: %w", err)
	}
	return os.Rename(tmp, recordPath(dir, r.InfoHash))
}

func dropRecord(dir, infohash string) { os.Remove(recordPath(dir, infohash)) }
