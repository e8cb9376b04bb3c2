package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// holdMemory raises the order, warms the folder without leaving a file,
// and restore puts the order back; a machine without the parameter is
// left alone, and a parameter it cannot read is an error naming it.
func TestHoldMemory(t *testing.T) {
	dir := t.TempDir()
	param := filepath.Join(dir, "page_reporting_order")
	warm := filepath.Join(dir, "caches")
	if err := os.Mkdir(warm, 0o755); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(param)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if err := os.WriteFile(param, []byte("5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	restore, did, err := holdMemory(param, warm, 3<<20+5)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "10" {
		t.Errorf("order while held: %s, want 10", got)
	}
	if !strings.Contains(did, "5 → 10") || !strings.Contains(did, "3 MiB") {
		t.Errorf("holdMemory said %q", did)
	}
	if left, _ := os.ReadDir(warm); len(left) != 0 {
		t.Errorf("warming left %d files in the caches' folder", len(left))
	}
	restore()
	if got := read(); got != "5" {
		t.Errorf("order after restore: %s, want 5", got)
	}

	restore, did, err = holdMemory(filepath.Join(dir, "missing"), "", 0)
	if err != nil || restore == nil || !strings.Contains(did, "nothing to hold") {
		t.Errorf("without the parameter: %q, %v", did, err)
	}
	if err := os.WriteFile(param, []byte("five"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := holdMemory(param, "", 0); err == nil || !strings.Contains(err.Error(), param) {
		t.Errorf("an unreadable order: %v, want an error naming %s", err, param)
	}
}
