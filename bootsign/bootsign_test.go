package bootsign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestKeyID(t *testing.T) {
	pub := ed25519.PublicKey(bytes.Repeat([]byte{7}, ed25519.PublicKeySize))
	sum := sha256.Sum256(pub)
	if got, want := KeyID(pub), hex.EncodeToString(sum[:])[:16]; got != want {
		t.Fatalf("KeyID = %s, want %s", got, want)
	}
	key := newKey(t)
	if s := NewSigner(key); s.KeyID() != KeyID(key.Public().(ed25519.PublicKey)) || !s.Public().Equal(key.Public()) {
		t.Fatalf("signer key ID %s / public key do not match its key", s.KeyID())
	}
}

// TestVerify: a signature made by the appliance's key over the exact body
// verifies; every way of getting it wrong fails with the matching kind and
// a message naming the key IDs involved.
func TestVerify(t *testing.T) {
	key, rogue := newKey(t), newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	id, rogueID := KeyID(pub), KeyID(rogue.Public().(ed25519.PublicKey))
	body := []byte(`{"name": "node01", "infohash": "0123"}` + "\n")
	good := NewSigner(key).Sign(body)
	if !strings.HasPrefix(good, "keyid="+id+"; ed25519=") {
		t.Fatalf("header %q", good)
	}
	if err := Verify(pub, body, good); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	flipped := ed25519.Sign(key, body)
	flipped[10] ^= 1
	tests := []struct {
		name   string
		body   []byte
		header string
		kind   error
		want   []string
	}{
		{"no header", body, "", ErrMissing, []string{"signature missing", "no Moobi-Signature header"}},
		{"blank header", body, "  ", ErrMissing, []string{"signature missing"}},
		{"malformed", body, "ed25519 " + good, ErrMalformed, []string{"malformed Moobi-Signature header"}},
		{"rogue key", body, NewSigner(rogue).Sign(body), ErrUnknownKey,
			[]string{"signature does not verify with key ID " + id + " (signed with key ID " + rogueID + ")"}},
		{"rogue claims our key ID", body, FormatHeader(id, ed25519.Sign(rogue, body)), ErrBadSignature,
			[]string{"signature does not verify with key ID " + id}},
		{"body changed", bytes.Replace(body, []byte("0123"), []byte("4567"), 1), good, ErrBadSignature,
			[]string{"signature does not verify with key ID " + id}},
		{"body with a byte more", append(append([]byte{}, body...), ' '), good, ErrBadSignature, nil},
		{"signature flipped", body, FormatHeader(id, flipped), ErrBadSignature, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(pub, tc.body, tc.header)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("Verify = %v, want %v", err, tc.kind)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if err := Verify(pub[:5], body, good); err == nil {
		t.Fatal("Verify accepted a truncated public key")
	}
}

func TestParseHeader(t *testing.T) {
	sig := bytes.Repeat([]byte{0xab}, ed25519.SignatureSize)
	b64 := base64.StdEncoding.EncodeToString(sig)
	const id = "0123456789abcdef"
	for _, ok := range []string{
		FormatHeader(id, sig),
		"ed25519=" + b64 + ";keyid=" + id,
		"  keyid=" + id + " ;  ed25519=" + b64 + "  ",
	} {
		gotID, gotSig, err := ParseHeader(ok)
		if err != nil || gotID != id || !bytes.Equal(gotSig, sig) {
			t.Errorf("ParseHeader(%q) = %s, %x, %v", ok, gotID, gotSig, err)
		}
	}
	for _, bad := range []struct{ header, want string }{
		{"keyid=" + id, "want both keyid and ed25519"},
		{"ed25519=" + b64, "want both"},
		{"keyid=" + id + "; ed25519=" + b64 + "; alg=rsa", `unknown parameter "alg"`},
		{"keyid=" + id + "; keyid=" + id + "; ed25519=" + b64, "keyid given twice"},
		{"keyid=" + id + "; ed25519=" + b64 + "; ed25519=" + b64, "ed25519 given twice"},
		{"keyid=0123456789ABCDEF; ed25519=" + b64, "not 16 lower-case hex digits"},
		{"keyid=0123456789abcdeg; ed25519=" + b64, "not 16 lower-case hex digits"},
		{"keyid=0123; ed25519=" + b64, "not 16 lower-case hex digits"},
		{"keyid=" + id + "; ed25519=" + b64[:40], "signature of 30 bytes, want 64"},
		{"keyid=" + id + "; ed25519=%%%%", "not base64"},
		{"keyid=" + id + "; ed25519=" + strings.TrimRight(b64, "="), "not base64"},
		{"keyid=" + id + " ed25519=" + b64, "not 16 lower-case hex digits"},
		{"keyid " + id, "is not key=value"},
		{strings.Repeat("x", 600), "600 bytes long"},
	} {
		_, _, err := ParseHeader(bad.header)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseHeader(%q) = %v, want a malformed-header error saying %q", bad.header, err, bad.want)
		}
	}
}

// FuzzParseHeader: no input crashes the parser, every failure has a kind,
// and what it accepts formats back to a header with the same meaning.
func FuzzParseHeader(f *testing.F) {
	f.Add(FormatHeader("0123456789abcdef", make([]byte, 64)))
	f.Add("ed25519=AAAA; keyid=00")
	f.Add("keyid=;;=")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		id, sig, err := ParseHeader(h)
		if err != nil {
			if !errors.Is(err, ErrMissing) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without a kind: %v", err)
			}
			return
		}
		if len(id) != 16 || len(sig) != ed25519.SignatureSize {
			t.Fatalf("accepted %q as key ID %q and a %d-byte signature", h, id, len(sig))
		}
		id2, sig2, err := ParseHeader(FormatHeader(id, sig))
		if err != nil || id2 != id || !bytes.Equal(sig2, sig) {
			t.Fatalf("round trip of %q: %s %x %v", h, id2, sig2, err)
		}
	})
}

// TestDeriveKey: a derived key depends on the signing key and the purpose,
// and is the same again for both.
func TestDeriveKey(t *testing.T) {
	_, k1, _ := ed25519.GenerateKey(nil)
	_, k2, _ := ed25519.GenerateKey(nil)
	a, b := NewSigner(k1), NewSigner(k2)
	if !bytes.Equal(a.DeriveKey("x"), NewSigner(k1).DeriveKey("x")) || len(a.DeriveKey("x")) != 32 {
		t.Fatal("not the same key again")
	}
	if bytes.Equal(a.DeriveKey("x"), a.DeriveKey("y")) || bytes.Equal(a.DeriveKey("x"), b.DeriveKey("x")) {
		t.Fatal("the same key for another purpose or signing key")
	}
}
