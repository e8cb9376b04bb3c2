package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/bootsign"
	"moobi/lab"
)

// TestWrongSigningKey: the real appliance serves the boot config, signed
// with its key, but the node's initramfs carries another appliance's public
// key: the node refuses the config — on its console and in a failed event
// whose reason names both key IDs — never asks for the torrent or the image,
// and never pivots.
func TestWrongSigningKey(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bin := moobiBinary(t)
	cache := lab.TestCacheDir(t)
	_, key := nodeInitrd(t, ctx, bin) // the appliance's key (and the base, built once)
	// Another appliance's key, kept in the cache so that its initramfs is too.
	otherKey := filepath.Join(cache, "boot-signing-other.key")
	if _, _, err := bootsign.LoadOrCreate(otherKey); err != nil {
		t.Fatal(err)
	}
	src, _ := filepath.Abs("..")
	initrd, _, err := lab.NodeInitrd(ctx, cache, bin, src, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := bootsign.LoadPublicKey(key)
	otherPub, _ := bootsign.LoadPublicKey(otherKey)
	keyID, otherID := bootsign.KeyID(pub), bootsign.KeyID(otherPub)

	node := rackNode{"wrongkey-node", "52:54:00:5b:00:01", lab.BIOS}
	r := newVMRack(t, ctx, vmRackOptions{hosts: []rackNode{node}, imageMiB: 1, initrd: initrd})
	l, app := r.l, r.app
	vm, err := l.StartVM(ctx, lab.VMOptions{Name: node.name, MAC: node.mac, Firmware: node.fw, MemoryMB: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	wctx, wcancel := context.WithTimeout(ctx, 8*time.Minute)
	defer wcancel()
	reason := "signature does not verify with key ID " + otherID + " (signed with key ID " + keyID + ")"
	if err := vm.WaitConsole(wctx, reason); err != nil {
		t.Fatalf("%v\n%s", err, lab.Tail(vm.Console(), 30))
	}
	if err := app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool {
		return e.Msg == "node event" && e.MAC == node.mac && e.State == "failed" && strings.Contains(e.Reason, reason)
	}); err != nil {
		t.Fatalf("no failed event with the signature reason: %v", err)
	}
	c := vm.Console()
	if !strings.Contains(c, "MOOBI: boot failed: boot config from http://"+lab.ApplianceAddr+":8080/v1/nodes/"+node.mac+"/boot") ||
		!strings.Contains(c, "/boot?version=v1: "+reason) ||
		!strings.Contains(c, "a server that does not hold the appliance's signing key answered") {
		t.Errorf("console does not say what failed:\n%s", lab.Tail(c, 20))
	}
	if strings.Contains(c, "switching root") || strings.Contains(c, lab.ImageMarker) {
		t.Fatalf("the node pivoted into the image:\n%s", lab.Tail(c, 20))
	}
	for _, e := range app.Entries() {
		if e.Msg == "http request" && (strings.HasSuffix(e.URI, "/rootfs.torrent") || strings.HasSuffix(e.URI, "/rootfs")) {
			t.Fatalf("the node fetched %s after refusing its boot config", e.URI)
		}
	}
	t.Logf("console:\n%s", lab.Tail(c, 6))
}
