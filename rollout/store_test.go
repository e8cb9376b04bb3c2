package rollout

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", FileName)
	f, err := Load(path)
	if err != nil || len(f.Rollouts) != 0 || f.Generation != 0 {
		t.Fatalf("missing file: %+v, %v", f, err)
	}
	r := at(mk(1, []string{"a"}, []string{"b"}), Booting, "a")
	f.Rollouts["r"] = r
	f.Pins["a"] = Pin{Image: "web", Version: "v2", Rollout: "r", Set: t0}
	for range 2 {
		if err := Save(path, &f); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 {
		t.Errorf("generation %d, want 2", got.Generation)
	}
	if diff := cmp.Diff(f, got); diff != "" {
		t.Errorf("(-saved +loaded):\n%s", diff)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("files left in the state folder: %v", ents)
	}
}

func TestLoadRefusesMismatchedID(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	os.WriteFile(path, []byte(`{"generation": 3, "rollouts": {"x": {"id": "y"}}}`), 0o600)
	if _, err := Load(path); err == nil {
		t.Error("a rollout stored under another id loaded")
	}
	os.WriteFile(path, []byte(`{"generation": `), 0o600)
	if _, err := Load(path); err == nil {
		t.Error("a truncated file loaded")
	}
}

// FuzzLoad: any state file loads or is refused, never panics, and what
// loads saves and loads again the same.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"generation": 3, "rollouts": {"r": {"id": "r", "image": "web", "version": "v2", "state": "running", "batch_timeout": "20m0s", "batches": [{"index": 0, "hosts": [{"name": "a", "state": "booting"}]}]}}, "pins": {"a": {"image": "web", "version": "v2"}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"rollouts": {"x": {"id": "y"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Load(path)
		if err != nil {
			return
		}
		for id, r := range st.Rollouts {
			st.Rollouts[id] = Restarted(r, t0)
			Step(st.Rollouts[id], nil, t0)
		}
		if err := Save(path, &st); err != nil {
			t.Fatal(err)
		}
		again, err := Load(path)
		if err != nil {
			t.Fatalf("a saved state does not load: %v", err)
		}
		if again.Generation != st.Generation || len(again.Rollouts) != len(st.Rollouts) || len(again.Pins) != len(st.Pins) {
			t.Errorf("round trip: %+v, then %+v", st, again)
		}
	})
}
