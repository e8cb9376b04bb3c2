package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/images/catalog"
	"moobi/lab"
)

// TestNodeRefusesBadImage: a node never pivots into an image that does not
// verify. First a version published without piece lists (rootfs.pieces
// and rootfs.pieces.blake3 removed: the node checks the torrent's SHA-1
// pieces and then the whole image) whose manifest carries a sha256 the
// image does not have (the
// download completes, the whole-image check fails); then every
// piece of the published image is altered, so neither the appliance's
// seeder (which stops serving bad pieces) nor its web seed (whose bytes
// fail the piece hashes) can deliver it: the download stalls. Each time the
// node says why on its console and in a failed event.
func TestNodeRefusesBadImage(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	node := rackNode{"picky-node", "52:54:00:ba:d0:01", lab.BIOS}
	r := newVMRack(t, ctx, vmRackOptions{hosts: []rackNode{node}, imageMiB: 4, cmdline: "moobi.reboot_after=30m"})
	version := filepath.Join(r.l.Dir(), "data", "images", "web", "current")

	boot := func(wantConsole, wantReason string, within time.Duration) {
		t.Helper()
		since := time.Now()
		vm, err := r.l.StartVM(ctx, lab.VMOptions{Name: node.name, MAC: node.mac, Firmware: node.fw, MemoryMB: 768})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Stop()
		wctx, wcancel := context.WithTimeout(ctx, within)
		defer wcancel()
		if err := vm.WaitConsole(wctx, wantConsole); err != nil {
			t.Fatalf("%v\n%s", err, lab.Tail(vm.Console(), 30))
		}
		if err := r.app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool {
			return e.Msg == "node event" && e.MAC == node.mac && e.State == "failed" && strings.Contains(e.Reason, wantReason) && e.Time.After(since)
		}); err != nil {
			t.Fatalf("no failed event with %q: %v", wantReason, err)
		}
		c := vm.Console()
		if strings.Contains(c, "switching root") || strings.Contains(c, lab.ImageMarker) {
			t.Fatalf("the node pivoted into an image that did not verify:\n%s", lab.Tail(c, 20))
		}
		t.Logf("console: %s", lastLine(c, wantConsole))
	}

	// 1. The manifest's sha256 is wrong, in a version without a piece list
	// (with one, the node checks every piece against the list the signed
	// config pins and never reads the whole-image sha256).
	lists := map[string]string{}
	for _, file := range []string{catalog.FilePieces, catalog.FilePiecesBLAKE3} {
		p := filepath.Join(version, file)
		list, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("the published version has no piece list: %v", err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		lists[p] = string(list)
	}
	manifest := filepath.Join(version, "manifest.json")
	orig, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(orig, &m); err != nil {
		t.Fatal(err)
	}
	rootfs := m["files"].(map[string]any)["rootfs"].(map[string]any)
	rootfs["sha256"] = strings.Repeat("0", 64)
	bad, _ := json.Marshal(m)
	writeFile(t, manifest, string(bad))
	boot("MOOBI: boot failed:", "sha256", 6*time.Minute)
	writeFile(t, manifest, string(orig))
	for p, list := range lists {
		writeFile(t, p, list)
	}

	// 2. Every piece altered: nobody can serve the image.
	pieceLen := int64(m["piece_length"].(float64))
	since := time.Now()
	f, err := os.OpenFile(filepath.Join(version, "rootfs"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	for off := int64(100); off < st.Size(); off += pieceLen {
		b := make([]byte, 1)
		f.ReadAt(b, off)
		b[0] ^= 0xff
		f.WriteAt(b, off)
	}
	f.Close()
	if err := r.app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool {
		return e.Msg == "seeder: image file is corrupt; its bad pieces are not served" && e.Time.After(since)
	}); err != nil {
		t.Fatalf("the seeder did not notice: %v", err)
	}
	boot("MOOBI: boot failed: download stalled", "download stalled", 8*time.Minute)
}
