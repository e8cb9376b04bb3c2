package nodes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// stateFile is the saved form of a registry.
type stateFile struct {
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	Nodes   []*Node   `json:"nodes"`
}

// saveState is what Save keeps between saves.
type saveState struct {
	mu sync.Mutex // serialises Save
	// nodes holds each saved node's JSON, by MAC.
	nodes map[string][]byte
	// written is the file the nodes were last written to; stale, that
	// they changed since.
	written string
	stale   bool
	size    int // bytes of nodes
}

// saveBatch is how many nodes Save copies per hold of the registry lock,
// which the boot services wait on meanwhile.
const saveBatch = 256

// Save writes every node, with its timeline and event log, to path: to a
// temporary file first, synced and renamed over path, so a crash leaves the
// old file or the new one. Nodes the inventory does not list, of which a
// proxy DHCP answer is all that was seen, are left out (see
// entry.transient).
//
// Save encodes only the nodes that changed since it last ran, and copies
// them a batch at a time: the boot services are never held up for long
// by a large registry. If nothing it writes changed since it last wrote
// path, it does not write it again.
func (r *Registry) Save(path string) error {
	sv := &r.save
	sv.mu.Lock()
	defer sv.mu.Unlock()
	r.mu.Lock()
	savedAt := r.now()
	macs := make([]string, 0, len(r.dirty))
	for mac := range r.dirty {
		macs = append(macs, mac)
	}
	clear(r.dirty)
	r.mu.Unlock()

	copies := make([]*Node, 0, len(macs)) // nil: not saved
	for i := 0; i < len(macs); i += saveBatch {
		r.mu.Lock()
		for _, mac := range macs[i:min(i+saveBatch, len(macs))] {
			e := r.nodes[mac]
			if e == nil || e.transient() {
				if e != nil {
					e.saved = false
				}
				copies = append(copies, nil)
				continue
			}
			e.saved = true
			c := e.Node
			c.Phases = slices.Clone(e.Phases)
			c.Events = slices.Clone(e.Events)
			copies = append(copies, &c)
		}
		r.mu.Unlock()
	}
	if sv.nodes == nil {
		sv.nodes = map[string][]byte{}
	}
	for i, c := range copies {
		if c == nil {
			if old, ok := sv.nodes[macs[i]]; ok {
				sv.size -= len(old)
				delete(sv.nodes, macs[i])
				sv.stale = true
			}
			continue
		}
		b, err := json.Marshal(c)
		if err == nil && sv.size-len(sv.nodes[macs[i]])+len(b) > MaxFileBytes {
			c.Events = nil // the file is full: the node's state only
			b, err = json.Marshal(c)
		}
		if err != nil {
			// Look at these again next time.
			r.mu.Lock()
			for _, mac := range macs[i:] {
				r.dirty[mac] = struct{}{}
			}
			r.mu.Unlock()
			return fmt.Errorf("save node states: node %s: %w", c.MAC, err)
		}
		sv.size += len(b) - len(sv.nodes[macs[i]])
		sv.nodes[macs[i]] = b
		sv.stale = true
	}
	if !sv.stale && sv.written == path {
		return nil
	}
	b, err := sv.encode(savedAt)
	if err != nil {
		return fmt.Errorf("save node states: %w", err)
	}
	if err := writeFile(path, b); err != nil {
		return err
	}
	sv.written, sv.stale = path, false
	return nil
}

// encode returns the state file of the saved nodes, sorted by MAC: a
// stateFile, put together from each node's JSON.
func (sv *saveState) encode(savedAt time.Time) ([]byte, error) {
	t, err := json.Marshal(savedAt)
	if err != nil {
		return nil, err
	}
	macs := make([]string, 0, len(sv.nodes))
	size := 64
	for mac, b := range sv.nodes {
		macs = append(macs, mac)
		size += len(b) + 1
	}
	slices.Sort(macs)
	var buf bytes.Buffer
	buf.Grow(size)
	buf.WriteString(`{"version":1,"saved":`)
	buf.Write(t)
	buf.WriteString(`,"nodes":[`)
	for i, mac := range macs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(sv.nodes[mac])
	}
	buf.WriteString("]}")
	return buf.Bytes(), nil
}

// writeFile writes b to a temporary file next to path, syncs it and
// renames it over path.
func writeFile(path string, b []byte) error {
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
	loaded := slices.DeleteFunc(st.Nodes, func(n *Node) bool { return n == nil || n.MAC == "" })
	// Oldest first, so that each goes to the back of the registry's order.
	slices.SortStableFunc(loaded, func(a, b *Node) int { return a.Updated.Compare(b.Updated) })
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range loaded {
		if len(n.Phases) > MaxPhases {
			n.Phases = n.Phases[len(n.Phases)-MaxPhases:]
		}
		n.trimLog()
		if old := r.nodes[n.MAC]; old != nil {
			removeFrom(&r.order[old.rank()], old)
			r.unindex(old)
		}
		e := &entry{Node: *n}
		e.unlisted = r.unlisted(e)
		r.nodes[n.MAC] = e
		insertByTime(&r.order[e.rank()], e)
		r.index(e)
		// Saved once again, in this version's form.
		r.dirty[n.MAC] = struct{}{}
		r.seq = max(r.seq, n.Seq)
	}
	for len(r.nodes) > MaxNodes {
		r.evict()
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
