package bootsign

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestLoadOrCreate: the first call generates a key (mode 0600, parent
// folders created) and writes its public half next to it; later calls, and
// racing ones, load that same key.
func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "sub", "boot-signing.key")
	key, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = created %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	pubFile := filepath.Join(filepath.Dir(path), "boot-signing.pub")
	if PublicKeyFile(path) != pubFile {
		t.Fatalf("PublicKeyFile = %s", PublicKeyFile(path))
	}
	pub, err := LoadPublicKey(pubFile)
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("public key file: %v, %v", pub, err)
	}
	again, created, err := LoadOrCreate(path)
	if err != nil || created || !again.Equal(key) {
		t.Fatalf("second LoadOrCreate: created %v, same key %v, %v", created, again.Equal(key), err)
	}
	if err := SavePrivateKey(path, key); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("SavePrivateKey over an existing key: %v", err)
	}

	// Racing creators agree on one key.
	racy := filepath.Join(t.TempDir(), "racy.key")
	keys := make([]ed25519.PrivateKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, err := LoadOrCreate(racy)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !k.Equal(keys[0]) {
			t.Fatal("racing LoadOrCreate calls returned different keys")
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(racy)); len(ents) != 2 {
		t.Errorf("folder holds %d entries, want the key and its .pub (no temporary files left)", len(ents))
	}
}

// TestKeyFiles: each accepted form loads, as a private key, a public key or
// both; each wrong one is refused with an error naming the file and what is
// wrong with it.
func TestKeyFiles(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	privPEM, _ := MarshalPrivateKey(key)
	pubPEM, _ := MarshalPublicKey(pub)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	mismatched := append(append([]byte{}, key[:32]...), newKey(t)[32:]...)
	b64 := base64.StdEncoding.EncodeToString
	const loads = ""
	tests := []struct {
		name, data        string
		wantPriv, wantPub string // error fragments, or loads
	}{
		{"PEM private key", string(privPEM), loads, loads},
		{"PEM public key", string(pubPEM), `PEM block of type "PUBLIC KEY", want "PRIVATE KEY"`, loads},
		{"base64 private key", b64(key) + "\n", loads, loads},
		{"base64 public key", b64(pub), "32 bytes: an ed25519 public key, not a private key", loads},
		{"base64 wrong size", b64(key[:40]), "base64 key of 40 bytes, want 64", "base64 key of 40 bytes, want 32 (an ed25519 public key) or 64"},
		{"base64 mismatched halves", b64(mismatched), "public half does not match", "public half does not match"},
		{"empty", "\n", "empty key file", "empty key file"},
		{"garbage", "not a key!", "neither PEM nor base64", "neither PEM nor base64"},
		{"broken PEM", "-----BEGIN PRIVATE KEY-----\nAAAA\n", "malformed PEM", "malformed PEM"},
		{"two PEM blocks", string(privPEM) + string(pubPEM), "more than one PEM block", "more than one PEM block"},
		{"ECDSA private key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})), "not ed25519", "not ed25519"},
		{"ECDSA public key", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER})), `type "PUBLIC KEY"`, "not ed25519"},
		{"PEM of another type", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})), `type "CERTIFICATE"`, `type "CERTIFICATE"`},
		{"PKCS #8 garbage", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})), "PKCS #8 private key", "PKCS #8 private key"},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".key")
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := LoadPrivateKey(path)
			check(t, "LoadPrivateKey", path, err, tc.wantPriv)
			if err == nil && !k.Equal(key) {
				t.Errorf("LoadPrivateKey returned another key")
			}
			p, err := LoadPublicKey(path)
			check(t, "LoadPublicKey", path, err, tc.wantPub)
			if err == nil && !p.Equal(pub) {
				t.Errorf("LoadPublicKey returned another key")
			}
		})
	}
	missing := filepath.Join(dir, "nope.key")
	if _, err := LoadPrivateKey(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
}

func check(t *testing.T, fn, path string, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("%s: %v", fn, err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("%s = %v, want an error naming %s and saying %q", fn, err, path, want)
	}
}

// TestOpenSSLKey: a key made by `openssl genpkey -algorithm ed25519` loads.
func TestOpenSSLKey(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	path := filepath.Join(t.TempDir(), "k.pem")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "ed25519", "-out", path).CombinedOutput(); err != nil {
		t.Skipf("openssl genpkey: %v\n%s", err, out)
	}
	key, err := LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "pkey", "-in", path, "-pubout").Output()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(out)
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("openssl's public key %v does not match: %v", pub, err)
	}
}

// FuzzParseKey: no key file crashes the parsers, and what they accept is a
// key of the right size (a private key's public half matching its seed).
func FuzzParseKey(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	privPEM, _ := MarshalPrivateKey(key)
	pubPEM, _ := MarshalPublicKey(key.Public().(ed25519.PublicKey))
	f.Add(privPEM)
	f.Add(pubPEM)
	f.Add([]byte(base64.StdEncoding.EncodeToString(key)))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := ParsePrivateKey(data); err == nil {
			if len(k) != ed25519.PrivateKeySize || !k.Equal(ed25519.NewKeyFromSeed(k.Seed())) {
				t.Fatalf("accepted a bad private key %x", k)
			}
		}
		if p, err := ParsePublicKey(data); err == nil && len(p) != ed25519.PublicKeySize {
			t.Fatalf("accepted a %d-byte public key", len(p))
		}
	})
}
