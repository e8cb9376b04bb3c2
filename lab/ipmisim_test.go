package lab

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteBMCFiles checks the simulator's files get their modes, also over
// files an earlier run left: the BMC password's lan.conf is 0600.
func TestWriteBMCFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lan.conf"), []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := IPMISimOptions{Name: "bmc1", Addr: "10.0.0.2", Port: 623, User: "op", Password: "secret"}
	files := map[string]string{"lan.conf": ipmiLanConf(o, dir), "chassis.sh": "#!/bin/sh\n", "boot": "default\n", "emu.cmds": "mc_enable 0x20\n"}
	if err := writeBMCFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"lan.conf": 0o600, "chassis.sh": 0o755, "boot": 0o644, "emu.cmds": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", name, fi.Mode(), err, want)
		}
	}
}
