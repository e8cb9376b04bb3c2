package httpd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"moobi/bootsign"
	"moobi/boottoken"
	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodeapi"
	"moobi/nodes"
)

// TestBootConfigSigned: the boot config carries a Moobi-Signature header
// that verifies, with the appliance's public key, over the exact body sent;
// without a Signer the header is absent.
func TestBootConfigSigned(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755)
	os.WriteFile(filepath.Join(dir, "bzImage"), []byte("MZ kernel"), 0o644)
	os.WriteFile(filepath.Join(dir, "root.squashfs"), append([]byte(catalog.SquashfsMagic), make([]byte, 100_000)...), 0o644)
	cat, err := catalog.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Publish(context.Background(), "web", catalog.Sources{Kernel: filepath.Join(dir, "bzImage"), Rootfs: filepath.Join(dir, "root.squashfs")}, catalog.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse(filepath.Join(dir, "hosts.yaml"), []byte(fmt.Sprintf(`appliance:
  interface: br0
  ipxe_dir: %s/ipxe
profiles:
  web:
    image: web
hosts:
  node01:
    mac: 52:54:00:12:34:01
    profile: web
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := bootsign.NewSigner(key)
	serve := func(signer Signer) *httptest.Server {
		s := &Server{
			Inventory: func() *inventory.Inventory { return inv },
			BaseURL:   func() string { return "http://10.99.0.1:8080" },
			Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
			Nodes:     nodes.New(),
			Catalog:   cat,
			Signer:    signer,
		}
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		return srv
	}
	srv := serve(signer)

	_, script := get(t, srv.URL+"/boot/52:54:00:12:34:01.ipxe")
	nonce := strings.Repeat("5a", 16)
	resp, body := get(t, srv.URL+"/v1/nodes/52-54-00-12-34-01/boot", boottoken.Header, boottoken.FromCmdline(string(script)), nodeapi.NonceHeader, nonce)
	if resp.StatusCode != 200 {
		t.Fatalf("boot config: %s %s", resp.Status, body)
	}
	h := resp.Header.Get(bootsign.Header)
	if err := bootsign.Verify(signer.Public(), body, h); err != nil {
		t.Fatalf("signature %q over the body sent: %v", h, err)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %s, body %d bytes", cl, len(body))
	}
	var cfg nodeapi.BootConfig
	if err := json.Unmarshal(body, &cfg); err != nil || cfg.Image != "web" || cfg.MAC != "52:54:00:12:34:01" || cfg.Validate() != nil {
		t.Fatalf("boot config %+v, %v", cfg, err)
	}
	// The signed config pins each piece's SHA-256 and BLAKE3 lists, which
	// the appliance serves.
	for _, l := range []struct{ file, url, sum string }{
		{catalog.FilePieces, cfg.Pieces, cfg.PiecesSHA256},
		{catalog.FilePiecesBLAKE3, cfg.PiecesBLAKE3, cfg.PiecesBLAKE3SHA256},
	} {
		if want := "http://10.99.0.1:8080/images/web/v1/" + l.file; l.url != want || len(l.sum) != 64 {
			t.Fatalf("boot config names %q %q, want %s and its sha256", l.url, l.sum, want)
		}
		resp, list := get(t, srv.URL+"/images/web/v1/"+l.file)
		if sum := sha256.Sum256(list); resp.StatusCode != 200 || hex.EncodeToString(sum[:]) != l.sum {
			t.Fatalf("GET %s: %s, %d bytes, sha256 %x; the config says %s", l.file, resp.Status, len(list), sum, l.sum)
		}
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if err := bootsign.Verify(other.Public().(ed25519.PublicKey), body, h); err == nil {
		t.Fatal("the signature verifies with another key")
	}

	unsigned := serve(nil).URL
	_, script = get(t, unsigned+"/boot/52:54:00:12:34:01.ipxe")
	resp, body = get(t, unsigned+"/v1/nodes/52:54:00:12:34:01/boot", boottoken.Header, boottoken.FromCmdline(string(script)), nodeapi.NonceHeader, nonce)
	if resp.StatusCode != 200 || resp.Header.Get(bootsign.Header) != "" || len(body) == 0 {
		t.Fatalf("without a signer: %s, header %q", resp.Status, resp.Header.Get(bootsign.Header))
	}
}
