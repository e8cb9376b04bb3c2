// Package bootsign signs the boot configs the appliance serves and verifies
// them on the node, so that a server on the boot network that does not hold
// the appliance's key cannot make a node boot its image.
//
// The appliance signs, with ed25519, the exact bytes of each
// GET /v1/nodes/{mac}/boot response body and sends the signature in a
// response header:
//
//	Moobi-Signature: keyid=3f2a9c0d41b7e855; ed25519=BASE64
//
// keyid is the first 8 bytes, in hex, of the sha256 of the public key, so a
// node can say which key it expected and which one signed; ed25519 is the
// 64-byte signature in standard base64. The node's public key is built into
// its initramfs at InitramfsPath.
package bootsign

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Header is the response header that carries a boot config's signature.
const Header = "Moobi-Signature"

// InitramfsPath is where the node initramfs holds the appliance's public key.
const InitramfsPath = "/etc/moobi/boot-signing.pub"

// maxHeader bounds the header a parser looks at: a valid one is ~112 bytes.
const maxHeader = 512

// The kinds of verification failure, for errors.Is.
var (
	ErrMissing      = errors.New("signature missing")
	ErrMalformed    = errors.New("malformed signature header")
	ErrUnknownKey   = errors.New("signed with an unknown key")
	ErrBadSignature = errors.New("bad signature")
)

// verifyError is a verification failure: its message says what failed, and
// it unwraps to one of the Err kinds.
type verifyError struct {
	kind error
	msg  string
}

func (e *verifyError) Error() string { return e.msg }
func (e *verifyError) Unwrap() error { return e.kind }

func malformed(format string, args ...any) error {
	return &verifyError{ErrMalformed, "malformed " + Header + " header: " + fmt.Sprintf(format, args...)}
}

// KeyID names a public key: the first 8 bytes, in hex, of its sha256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Signer signs boot config bodies with the appliance's private key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer using key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// KeyID is the ID of the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// Public is the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// DeriveKey returns a 32-byte secret for purpose, derived from the signing
// key (HMAC-SHA256 keyed by its seed): other secrets of the appliance that
// must survive a restart need no file of their own.
func (s *Signer) DeriveKey(purpose string) []byte {
	h := hmac.New(sha256.New, s.key.Seed())
	h.Write([]byte("moobi derived key\x00" + purpose))
	return h.Sum(nil)
}

// Sign signs body and returns the value of the Header that carries the
// signature.
func (s *Signer) Sign(body []byte) string {
	return FormatHeader(s.id, ed25519.Sign(s.key, body))
}

// FormatHeader is the Header value for a signature made by key keyID.
func FormatHeader(keyID string, sig []byte) string {
	return "keyid=" + keyID + "; ed25519=" + base64.StdEncoding.EncodeToString(sig)
}

// ParseHeader reads a Header value: the signing key's ID and the signature.
// An empty value is ErrMissing; anything else not exactly of the form
// "keyid=16 hex digits; ed25519=base64 of 64 bytes" (parameters in any
// order, spaces around them allowed) is ErrMalformed.
func ParseHeader(v string) (keyID string, sig []byte, err error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil, &verifyError{ErrMissing, "signature missing: the response has no " + Header + " header"}
	}
	if len(v) > maxHeader {
		return "", nil, malformed("%d bytes long", len(v))
	}
	var haveID, haveSig bool
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, malformed("%q is not key=value", part)
		}
		switch k {
		case "keyid":
			if haveID {
				return "", nil, malformed("keyid given twice")
			}
			haveID = true
			if len(val) != 16 || strings.ToLower(val) != val {
				return "", nil, malformed("keyid %q is not 16 lower-case hex digits", val)
			}
			if _, err := hex.DecodeString(val); err != nil {
				return "", nil, malformed("keyid %q is not 16 lower-case hex digits", val)
			}
			keyID = val
		case "ed25519":
			if haveSig {
				return "", nil, malformed("ed25519 given twice")
			}
			haveSig = true
			b, err := base64.StdEncoding.Strict().DecodeString(val)
			if err != nil {
				return "", nil, malformed("ed25519 signature is not base64: %v", err)
			}
			if len(b) != ed25519.SignatureSize {
				return "", nil, malformed("ed25519 signature of %d bytes, want %d", len(b), ed25519.SignatureSize)
			}
			sig = b
		default:
			return "", nil, malformed("unknown parameter %q (want keyid and ed25519)", k)
		}
	}
	if !haveID || !haveSig {
		return "", nil, malformed("want both keyid and ed25519")
	}
	return keyID, sig, nil
}

// Verify checks that header, the value of the response's Header, is a
// signature of body by pub. The error says which check failed and unwraps
// to ErrMissing, ErrMalformed, ErrUnknownKey or ErrBadSignature.
func Verify(pub ed25519.PublicKey, body []byte, header string) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify boot config: public key of %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	id, sig, err := ParseHeader(header)
	if err != nil {
		return err
	}
	want := KeyID(pub)
	if id != want {
		return &verifyError{ErrUnknownKey, fmt.Sprintf("signature does not verify with key ID %s (signed with key ID %s)", want, id)}
	}
	if !ed25519.Verify(pub, body, sig) {
		return &verifyError{ErrBadSignature, fmt.Sprintf("signature does not verify with key ID %s", want)}
	}
	return nil
}
