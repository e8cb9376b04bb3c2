package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"moobi/lab"
)

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// currentRootfsSHA256 reads the current version's rootfs sha256 from /v1/images.
func currentRootfsSHA256(t *testing.T, ctx context.Context, l *lab.Lab) string {
	t.Helper()
	out, err := curl(ctx, l, "http://"+lab.ApplianceAddr+":8080/v1/images")
	if err != nil {
		t.Fatal(err)
	}
	var imgs []struct {
		Name, Current string
		Versions      []struct {
			Version string
			Files   map[string]struct{ SHA256 string }
		}
	}
	if err := json.Unmarshal([]byte(out), &imgs); err != nil {
		t.Fatalf("/v1/images: %v\n%s", err, out)
	}
	for _, img := range imgs {
		for _, v := range img.Versions {
			if img.Name == "web" && v.Version == img.Current {
				return v.Files["rootfs"].SHA256
			}
		}
	}
	t.Fatalf("/v1/images has no current web image:\n%s", out)
	return ""
}

// TestThirdPartyClients: aria2c and transmission-cli, unmodified, download
// the image from the appliance's tracker and seeder; the bytes match the
// manifest's sha256 and the appliance's upload counters grew.
func TestThirdPartyClients(t *testing.T) {
	lab.RequireRoot(t, "curl", "mksquashfs", "aria2c", "transmission-cli")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	il := newImageLab(t, ctx, 8, map[string]string{"node01": "52:54:00:c1:00:01"})
	want := currentRootfsSHA256(t, ctx, il.l)
	// Without the web seed in the torrent, both clients must use the
	// tracker and the appliance's seeder.
	torrentURL := "http://" + lab.ApplianceAddr + ":8080/images/web/current/rootfs.torrent?webseed=0"

	t.Run("aria2c", func(t *testing.T) {
		ns := il.addNode(t, ctx, 1, "")
		dir := filepath.Join(il.l.Dir(), "aria2")
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "aria2c", "--dir", dir, "--seed-time=0",
			"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
			"--summary-interval=0", "--console-log-level=warn", torrentURL)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("aria2c: %v\n%s", err, out)
		}
		if got := sha256File(t, filepath.Join(dir, "rootfs")); got != want {
			t.Fatalf("aria2c's rootfs has sha256 %s, the manifest says %s", got, want)
		}
	})

	t.Run("transmission-cli", func(t *testing.T) {
		ns := il.addNode(t, ctx, 2, "")
		dir := filepath.Join(il.l.Dir(), "transmission")
		os.MkdirAll(dir, 0o755)
		torrent := filepath.Join(dir, "web.torrent")
		if out, err := il.l.Command(ctx, "curl", "-sSf", "-o", torrent, torrentURL).CombinedOutput(); err != nil {
			t.Fatalf("fetch torrent: %v\n%s", err, out)
		}
		// transmission-cli seeds forever; its finish script stops it.
		done := filepath.Join(dir, "done.sh")
		writeFile(t, done, "#!/bin/sh\nkill -INT $PPID\n")
		os.Chmod(done, 0o755)
		home := filepath.Join(dir, "home")
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "transmission-cli", "-w", dir, "-g", home, "-f", done, "-er", torrent)
		out, _ := cmd.CombinedOutput()
		if got := sha256File(t, filepath.Join(dir, "rootfs")); got != want {
			t.Fatalf("transmission's rootfs has sha256 %s, the manifest says %s\n%s", got, want, lab.Tail(string(out), 20))
		}
	})

	metrics, err := curl(ctx, il.l, "http://"+lab.ApplianceAddr+":8080/metrics")
	if err != nil {
		t.Fatal(err)
	}
	bt := metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="bittorrent"}`)
	web := max(0, metricValue(metrics, `moobi_swarm_uploaded_bytes_total{image="web",protocol="http"}`))
	t.Logf("appliance uploaded %.0f bytes over BitTorrent and %.0f over HTTP for two %d-byte downloads", bt, web, il.size)
	if bt+web < float64(il.size) {
		t.Fatalf("appliance counted %.0f bytes uploaded, less than one image (%d)", bt+web, il.size)
	}
	if bt < float64(il.size) {
		t.Fatalf("the appliance's seeder uploaded %.0f bytes, less than one image", bt)
	}
	if web != 0 {
		t.Fatalf("%.0f bytes went over the web seed, which the torrent did not name", web)
	}
}
