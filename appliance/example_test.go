package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleInventoryChecks: the README's first command, `moobi check
// --config hosts.yaml`, passes on the repository's example as it stands in
// a fresh clone (its direct netboot profile boots Debian's ipxe.lkrn, which
// the ipxe package puts beside the iPXE binaries ipxe_dir names).
func TestExampleInventoryChecks(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", filepath.Join("..", "hosts.yaml")}, &out, &errb); code != 0 {
		t.Fatalf("moobi check --config hosts.yaml: exit %d\n%s", code, errb.String())
	}
	if !strings.Contains(out.String(), "ok (") {
		t.Errorf("moobi check --config hosts.yaml printed %q, want ok (N hosts, N profiles)", out.String())
	}
}
