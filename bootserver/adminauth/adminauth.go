// Package adminauth guards the appliance's admin endpoints with a bearer
// token: a random secret the appliance keeps in data_dir/state/admin.token
// (mode 0600), created at its first start. Requests carry it as
// `Authorization: Bearer TOKEN`; the comparison takes constant time. Any
// endpoint that changes state, or reaches past the appliance (BMCs), wraps
// its handler in a Guard.
package adminauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// File is the token's path below data_dir.
const File = "state/admin.token"

// Path is the admin token file of an appliance whose data_dir is dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, File) }

// Token is the admin secret.
type Token struct{ secret []byte }

// LoadOrCreate reads the token at path, or creates it (32 random bytes,
// in hex, mode 0600) if there is none; created tells which. A token file
// that group or others can read is refused.
func LoadOrCreate(path string) (t *Token, created bool, err error) {
	s, err := ReadFile(path)
	if err == nil {
		return &Token{secret: []byte(s)}, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, false, fmt.Errorf("admin token: %w", err)
	}
	secret := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("admin token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("admin token: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("admin token: %w", err)
	}
	return &Token{secret: []byte(secret)}, true, nil
}

// ReadFile reads a token file (what clients send), refusing one that
// group or others can read, or an empty one.
func ReadFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("admin token %s is readable by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("admin token %s is empty", path)
	}
	return s, nil
}

// Reasons a request is refused, as counted in moobi_http_auth_refused_total.
const (
	ReasonMissing = "missing" // no bearer token: 401
	ReasonWrong   = "wrong"   // a token that is not the admin token: 403
)

// Check tells whether an Authorization header carries the token; reason is
// ReasonMissing or ReasonWrong when it does not.
func (t *Token) Check(header string) (reason string, ok bool) {
	scheme, cred, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
		return ReasonMissing, false
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), t.secret) != 1 {
		return ReasonWrong, false
	}
	return "", true
}

// Guard lets through requests that carry the admin token.
type Guard struct {
	Token *Token
	// Refused, if set, is told of every refusal and its reason.
	Refused func(reason string)
	Log     *slog.Logger
}

// Wrap refuses requests to next without the token: 401 (with
// WWW-Authenticate) when none is sent, 403 when another is.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reason, ok := g.Token.Check(r.Header.Get("Authorization"))
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		if g.Refused != nil {
			g.Refused(reason)
		}
		if g.Log != nil {
			g.Log.Warn("admin request refused", "reason", reason, "client", r.RemoteAddr, "uri", r.URL.Path)
		}
		if reason == ReasonMissing {
			w.Header().Set("WWW-Authenticate", `Bearer realm="moobi admin"`)
			http.Error(w, "unauthorized: this endpoint needs the admin token (Authorization: Bearer TOKEN; the token is in data_dir/"+File+" on the appliance)", http.StatusUnauthorized)
			return
		}
		http.Error(w, "forbidden: the bearer token is not the admin token", http.StatusForbidden)
	})
}
