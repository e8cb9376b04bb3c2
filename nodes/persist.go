package nodes

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// stateFile is the saved form of a registry.
type stateFile struct {
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	Nodes   []*Node   `json:"nodes"`
}

// Save writes every node, with its timeline and event log, to path: to a
// temporary file first, synced and renamed over path, so a crash leaves the
// old file or the new one.
func (r *Registry) Save(path string) error {
	r.mu.Lock()
	st := stateFile{Version: 1, Saved: r.now()}
	for _, n := range r.nodes {
		c := *n
		c.Phases = append([]Phase(nil), n.Phases...)
		c.Events = append([]Entry(nil), n.Events...)
		st.Nodes = append(st.Nodes, &c)
	}
	r.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save node states: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save node states: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".nodes-*.json")
	if err != nil {
		return fmt.Errorf("save node states: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save node states to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save node states to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save node states to %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save node states: %w", err)
	}
	return nil
}

// Load restores the nodes saved at path into an empty registry. A missing
// file is not an error. A file that does not parse is moved aside (to
// path.bad) so nothing is lost, and reported.
func (r *Registry) Load(path string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load node states: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil || st.Version != 1 {
		if err == nil {
			err = fmt.Errorf("unknown version %d", st.Version)
		}
		bad := path + ".bad"
		if rerr := os.Rename(path, bad); rerr != nil {
			return fmt.Errorf("load node states from %s: %v (and moving it aside: %v)", path, err, rerr)
		}
		return fmt.Errorf("load node states from %s: %w; moved it to %s and started empty", path, err, bad)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range st.Nodes {
		if n == nil || n.MAC == "" {
			continue
		}
		if len(n.Phases) > MaxPhases {
			n.Phases = n.Phases[len(n.Phases)-MaxPhases:]
		}
		if len(n.Events) > MaxEvents {
			n.Events = n.Events[len(n.Events)-MaxEvents:]
		}
		r.nodes[n.MAC] = n
		r.seq = max(r.seq, n.Seq)
	}
	return nil
}

// Len returns how many nodes the registry holds.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.nodes)
}

// Persist saves the registry to path whenever it changed, at most once
// per every, and a last time when ctx ends. Call Load first.
func (r *Registry) Persist(ctx context.Context, path string, every time.Duration, log *slog.Logger) error {
	var saved uint64 // 0: anything restored or already recorded is saved once
	var lastSave time.Duration
	for {
		changed := r.Changed()
		if seq := r.Seq(); seq != saved {
			// Let a burst of changes (a rack reporting progress) settle;
			// a large registry is saved less often, so that saving never
			// takes more than a twentieth of the time.
			select {
			case <-ctx.Done():
			case <-time.After(max(every, 20*lastSave)):
			}
			seq = r.Seq()
			t0 := time.Now()
			err := r.Save(path)
			lastSave = time.Since(t0)
			if err != nil {
				log.Error("node states not saved", "err", err)
			} else {
				saved = seq
			}
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}
