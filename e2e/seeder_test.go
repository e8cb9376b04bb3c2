package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/lab"
)

// restartAppliance stops the appliance and starts it again, returning
// when it was started.
func (il *imageLab) restart(t *testing.T, ctx context.Context) time.Time {
	t.Helper()
	if err := il.app.Stop(); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	il.app = startAppliance(t, ctx, il.l, il.bin, il.cfg)
	return at
}

// seedingLine waits for the seeder's "seeding" line logged after since.
func (il *imageLab) seedingLine(t *testing.T, ctx context.Context, since time.Time, timeout time.Duration) lab.LogEntry {
	t.Helper()
	var found lab.LogEntry
	err := il.app.WaitLog(ctx, timeout, func(e lab.LogEntry) bool {
		if e.Msg == "seeding" && e.Time.After(since) {
			found = e
			return true
		}
		return false
	})
	if err != nil {
		t.Fatalf("no seeding line after %v: %v", since, err)
	}
	return found
}

// TestSeederRestart: a 1 GiB image is hashed once; after a restart the
// seeder trusts its completion record and seeds at once, without hashing.
func TestSeederRestart(t *testing.T) {
	lab.RequireRoot(t, "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	il := newImageLab(t, ctx, 1024, map[string]string{"node01": "52:54:00:5e:00:01"})
	first := il.seedingLine(t, ctx, time.Time{}, time.Minute)
	if !strings.Contains(il.app.Log(), `"verified":"hashed"`) {
		t.Fatalf("first start did not hash the new image: %+v", first)
	}
	at := il.restart(t, ctx)
	again := il.seedingLine(t, ctx, at, time.Minute)
	if !strings.Contains(lab.Tail(il.app.Log(), 40), `"verified":"completion record"`) {
		t.Fatalf("restart hashed the unchanged image again:\n%s", lab.Tail(il.app.Log(), 10))
	}
	t.Logf("restart: seeding the %d-byte image %.3fs after the process started", il.size, again.Time.Sub(at).Seconds())

	// What it serves right after the restart is whole and valid: a node
	// limited to BitTorrent (no web seed) fetches and verifies it.
	ns := il.addNode(t, ctx, 1, "")
	results := il.fetchAll(t, ctx, []string{ns}, []string{"52:54:00:5e:00:01"}, "--webseed-after", "1h")
	if r := results[0]; r.err != nil || r.size != il.size || r.fromSeed != 0 {
		t.Fatalf("node fetch after the restart: %+v", r)
	}
	t.Logf("a node fetched and verified it from the restarted seeder in %.1fs", results[0].seconds)
}

// TestSeederAlteredImage: bytes changed in a published rootfs — while the
// appliance runs, and while it is down — are caught; the altered piece is
// not served, so a node that can only use the appliance's seeder never
// verifies a bad image.
func TestSeederAlteredImage(t *testing.T) {
	lab.RequireRoot(t, "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	il := newImageLab(t, ctx, 16, map[string]string{"node01": "52:54:00:5e:00:02"})
	il.seedingLine(t, ctx, time.Time{}, time.Minute)
	published := filepath.Join(il.l.Dir(), "data", "images", "web", "current", "rootfs")
	flip := func(off int64) {
		f, err := os.OpenFile(published, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		f.ReadAt(b, off)
		b[0] ^= 0xff
		f.WriteAt(b, off)
		f.Close()
	}
	corrupt := func(since time.Time) {
		t.Helper()
		if err := il.app.WaitLog(ctx, time.Minute, func(e lab.LogEntry) bool {
			return e.Msg == "seeder: image file is corrupt; its bad pieces are not served" && e.Time.After(since)
		}); err != nil {
			t.Fatalf("alteration not detected: %v\n%s", err, lab.Tail(il.app.Log(), 10))
		}
	}

	// Altered under the running appliance.
	at := time.Now()
	flip(5 << 20)
	corrupt(at)

	// Altered while it was down (and the first change left in place).
	il.app.Stop()
	flip(9 << 20)
	at = il.restart(t, ctx)
	corrupt(at)
	if strings.Contains(il.app.Log()[strings.LastIndex(il.app.Log(), "appliance serving"):], `"verified":"completion record"`) {
		t.Fatal("the altered image was trusted after the restart")
	}

	// A node limited to the appliance's seeder (no web seed) cannot finish.
	ns := il.addNode(t, ctx, 1, "")
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	out, err := exec.CommandContext(fctx, "ip", "netns", "exec", ns, il.bin, "node", "fetch", "--server", "http://"+lab.ApplianceAddr+":8080",
		"--mac", "52:54:00:5e:00:02", "--dir", filepath.Join(il.l.Dir(), "cache"), "--webseed-after", "1h").CombinedOutput()
	if err == nil || strings.Contains(string(out), "verified web") {
		t.Fatalf("node verified an image the appliance could only serve altered:\n%s", out)
	}
	t.Logf("node stopped unverified: %v", err)
}
