package bootsign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Key files hold one key, either as PEM — "PRIVATE KEY" (PKCS #8) or
// "PUBLIC KEY" (PKIX), as written here and by `openssl genpkey -algorithm
// ed25519` — or as raw base64: 64 bytes for a private key (seed and public
// key, as Go and NaCl hold it), 32 bytes for a public key.

const (
	pemPrivate = "PRIVATE KEY"
	pemPublic  = "PUBLIC KEY"
)

// MarshalPrivateKey encodes key as a PEM "PRIVATE KEY" (PKCS #8) block.
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), nil
}

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" (PKIX) block.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// decode returns the key bytes of a key file's contents: the PEM block's
// type and DER, or (typ "") the raw base64-decoded bytes.
func decode(data []byte) (typ string, b []byte, err error) {
	text := bytes.TrimSpace(data)
	if len(text) == 0 {
		return "", nil, errors.New("empty key file")
	}
	if bytes.HasPrefix(text, []byte("-----BEGIN")) {
		block, rest := pem.Decode(text)
		if block == nil {
			return "", nil, errors.New("malformed PEM")
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return "", nil, errors.New("more than one PEM block")
		}
		return block.Type, block.Bytes, nil
	}
	b, err = base64.StdEncoding.DecodeString(string(text))
	if err != nil {
		return "", nil, errors.New("neither PEM nor base64")
	}
	return "", b, nil
}

// ParsePrivateKey reads the contents of a private key file.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	typ, b, err := decode(data)
	if err != nil {
		return nil, err
	}
	switch typ {
	case pemPrivate:
		k, err := x509.ParsePKCS8PrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("PKCS #8 private key: %w", err)
		}
		key, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T private key, not ed25519", k)
		}
		return key, nil
	case "":
		switch len(b) {
		case ed25519.PrivateKeySize:
			key := ed25519.PrivateKey(b)
			// The second half must be the public key of the first.
			if !bytes.Equal(ed25519.NewKeyFromSeed(b[:ed25519.SeedSize]), key) {
				return nil, errors.New("base64 private key whose public half does not match its seed")
			}
			return key, nil
		case ed25519.PublicKeySize:
			return nil, fmt.Errorf("base64 key of %d bytes: an ed25519 public key, not a private key", len(b))
		}
		return nil, fmt.Errorf("base64 key of %d bytes, want %d (an ed25519 private key)", len(b), ed25519.PrivateKeySize)
	}
	return nil, fmt.Errorf("PEM block of type %q, want %q", typ, pemPrivate)
}

// ParsePublicKey reads the contents of a public key file, or of a private
// key file, whose public half it returns.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	typ, b, err := decode(data)
	if err != nil {
		return nil, err
	}
	switch {
	case typ == pemPublic:
		k, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("PKIX public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T public key, not ed25519", k)
		}
		return pub, nil
	case typ == "" && len(b) == ed25519.PublicKeySize:
		return ed25519.PublicKey(b), nil
	case typ == pemPrivate || typ == "" && len(b) == ed25519.PrivateKeySize:
		key, err := ParsePrivateKey(data)
		if err != nil {
			return nil, err
		}
		return key.Public().(ed25519.PublicKey), nil
	case typ == "":
		return nil, fmt.Errorf("base64 key of %d bytes, want %d (an ed25519 public key) or %d (a private key)",
			len(b), ed25519.PublicKeySize, ed25519.PrivateKeySize)
	}
	return nil, fmt.Errorf("PEM block of type %q, want %q or %q", typ, pemPublic, pemPrivate)
}

// LoadPrivateKey reads the private key file at path. It refuses a file
// that group or others may read or write: whoever reads the key can sign
// boot configs.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err := checkPrivateMode(path, st.Mode()); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	key, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return key, nil
}

// checkPrivateMode refuses a private key file whose mode lets group or
// others at it.
func checkPrivateMode(path string, mode fs.FileMode) error {
	if perm := mode.Perm(); perm&0o077 != 0 {
		return fmt.Errorf("signing key %s has mode %04o: group and others may read it, and whoever reads it can sign boot configs; run chmod 600 %s", path, perm, path)
	}
	return nil
}

// LoadPublicKey reads the public key file at path; a private key file is
// accepted too, and its public half returned.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}

// PublicKeyFile is where the public half of the private key file path is
// written: its name with ".key" replaced by (or else followed by) ".pub".
func PublicKeyFile(path string) string {
	return strings.TrimSuffix(path, ".key") + ".pub"
}

// LoadOrCreate reads the private key file at path, or, when there is none,
// generates a key and writes it there (mode 0600, parent folders created)
// and its public half to PublicKeyFile(path). created reports which. Two
// processes creating the key at once end up with the same key.
func LoadOrCreate(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = LoadPrivateKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate signing key: %w", err)
	}
	if err := SavePrivateKey(path, key); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process was quicker
			key, err = LoadPrivateKey(path)
			return key, false, err
		}
		return nil, false, err
	}
	if err := WritePublicKey(PublicKeyFile(path), key.Public().(ed25519.PublicKey)); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// SavePrivateKey writes key to path as a PEM private key file, mode 0600,
// creating parent folders. It never replaces a file: if path exists, the
// error wraps fs.ErrExist.
func SavePrivateKey(path string, key ed25519.PrivateKey) error {
	b, err := MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	if err := writeFile(path, b, 0o600, false); err != nil {
		return fmt.Errorf("write signing key %s: %w", path, err)
	}
	return nil
}

// WritePublicKey writes pub to path as a PEM public key file (mode 0644),
// replacing any file there.
func WritePublicKey(path string, pub ed25519.PublicKey) error {
	b, err := MarshalPublicKey(pub)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	if err := writeFile(path, b, 0o644, true); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}

// writeFile writes data to path whole or not at all: to a temporary file in
// the same folder, synced, then renamed over path (replace) or linked to it
// (fails with fs.ErrExist if path exists).
func writeFile(path string, data []byte, mode os.FileMode, replace bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		return os.Rename(tmp, path)
	}
	return os.Link(tmp, path)
}
