package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"moobi/bootsign"
)

// TestLoadKey: the key the build put in the initramfs loads; without one,
// or with a broken one, the node refuses to boot and says why.
func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	good := filepath.Join(dir, "boot-signing.pub")
	if err := bootsign.WritePublicKey(good, pub); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadKey(good); err != nil || !got.Equal(pub) {
		t.Fatalf("LoadKey = %v, %v", got, err)
	}
	broken := filepath.Join(dir, "broken.pub")
	os.WriteFile(broken, []byte("-----BEGIN PUBLIC KEY-----\n"), 0o644)
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.pub"), "no such file"},
		{broken, "malformed PEM"},
	} {
		_, err := LoadKey(tc.path)
		if err == nil || !strings.HasPrefix(err.Error(), "refusing to boot: this initramfs has no usable boot signing key") ||
			!strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "moobi initrd build --config") {
			t.Errorf("LoadKey(%s) = %v", tc.path, err)
		}
	}
}

func TestAnswered(t *testing.T) {
	_, transport := http.Get("http://127.0.0.1:1/")
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://127.0.0.1:1/", nil)
	_, transport2 := http.DefaultClient.Do(req)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("boot config: %w", transport), false},
		{transport2, false},
		{errors.New("boot config from URL: signature missing"), true},
		{fmt.Errorf("boot config: %w", errors.New("GET URL: 404 Not Found: not found")), true},
	} {
		if got := answered(tc.err); got != tc.want {
			t.Errorf("answered(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
