package inventory

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Store holds the inventory currently in force and replaces it, whole, when
// the file changes and the new contents validate.
type Store struct {
	path string
	log  *slog.Logger
	cur  atomic.Pointer[Inventory]

	mu   sync.Mutex // serialises reloads
	last []byte     // contents of the file behind cur
}

// Open loads the inventory at path; it fails if the file does not validate.
func Open(path string, log *slog.Logger) (*Store, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	inv, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, log: log, last: data}
	s.cur.Store(inv)
	return s, nil
}

// Current returns the inventory in force. It never returns nil.
func (s *Store) Current() *Inventory { return s.cur.Load() }

// Reload re-reads the file. If it validates, it replaces the current
// inventory; otherwise the current one stays and the problems are returned.
// changed reports whether a new inventory took effect.
func (s *Store) Reload() (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false, fmt.Errorf("read inventory: %w", err)
	}
	if bytes.Equal(data, s.last) {
		return false, nil
	}
	inv, err := Parse(s.path, data)
	if err != nil {
		return false, err
	}
	old := s.cur.Swap(inv)
	s.last = data
	if d := diffAppliance(old.Appliance, inv.Appliance); d != "" {
		s.log.Warn("appliance settings changed; listeners keep their old settings until restart", "changed", d)
	}
	return true, nil
}

func diffAppliance(a, b Appliance) string {
	switch {
	case a.Interface != b.Interface:
		return "interface"
	case a.HTTPPort != b.HTTPPort:
		return "http_port"
	}
	return ""
}

// Watch reloads the inventory whenever its file changes (the folder is
// watched, since editors save by renaming) or a value arrives on hup, until
// ctx ends. A bad edit is logged and refused; the previous inventory keeps
// serving.
func (s *Store) Watch(ctx context.Context, hup <-chan os.Signal) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch inventory: %w", err)
	}
	defer w.Close()
	dir, base := filepath.Split(s.path)
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch inventory folder %s: %w", dir, err)
	}
	// Catch edits made between loading and watching.
	s.reloadAndLog("watch start")
	// Editors write a file in several steps; reload once they are done.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-w.Events:
			if filepath.Base(ev.Name) == base {
				debounce.Reset(150 * time.Millisecond)
			}
		case err := <-w.Errors:
			s.log.Warn("inventory watch error", "err", err)
		case <-hup:
			s.reloadAndLog("signal")
		case <-debounce.C:
			s.reloadAndLog("file change")
		}
	}
}

func (s *Store) reloadAndLog(why string) {
	changed, err := s.Reload()
	switch {
	case err != nil:
		s.log.Error("inventory reload refused; the previous inventory keeps serving", "file", s.path, "trigger", why, "err", err)
	case changed:
		inv := s.Current()
		s.log.Info("inventory reloaded", "file", s.path, "trigger", why, "hosts", len(inv.Hosts), "profiles", len(inv.Profiles))
	}
}
