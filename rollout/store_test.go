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
