package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FileName is the state file's name below data_dir/state.
const FileName = "rollouts.json"

// File is the state file: every rollout by ID and every pin by host name.
// Generation grows by one with each write, so that a reader (or, later,
// another appliance of the site) can tell which of two copies is newer.
type File struct {
	Generation uint64             `json:"generation"`
	Rollouts   map[string]Rollout `json:"rollouts"`
	Pins       map[string]Pin     `json:"pins"`
}

// Load reads the state file at path; a missing file is an empty state.
func Load(path string) (File, error) {
	f := File{Rollouts: map[string]Rollout{}, Pins: map[string]Pin{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("rollout state: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return File{Rollouts: map[string]Rollout{}, Pins: map[string]Pin{}}, fmt.Errorf("rollout state %s: %w", path, err)
	}
	if f.Rollouts == nil {
		f.Rollouts = map[string]Rollout{}
	}
	if f.Pins == nil {
		f.Pins = map[string]Pin{}
	}
	for id, r := range f.Rollouts {
		if r.ID != id {
			return File{Rollouts: map[string]Rollout{}, Pins: map[string]Pin{}}, fmt.Errorf("rollout state %s: rollout stored as %q has id %q", path, id, r.ID)
		}
	}
	return f, nil
}

// Save writes f to path with its generation one higher, atomically: a
// temporary file in the same folder, synced, renamed over path, and the
// folder synced. f's Generation is updated only when the write succeeded;
// errors name path.
func Save(path string, f *File) error {
	next := *f
	next.Generation++
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fmt.Errorf("saving rollout state %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving rollout state %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving rollout state %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving rollout state %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving rollout state %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving rollout state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving rollout state %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("saving rollout state %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("saving rollout state %s: sync %s: %w", path, dir, err)
	}
	f.Generation = next.Generation
	return nil
}
