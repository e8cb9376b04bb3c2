package adminauth

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "admin.token")
	tok, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", st.Mode(), err)
	}
	if len(tok.secret) != 64 {
		t.Errorf("token of %d characters, want 64 hex digits", len(tok.secret))
	}
	again, created, err := LoadOrCreate(path)
	if err != nil || created || string(again.secret) != string(tok.secret) {
		t.Fatalf("second LoadOrCreate made another token (%v, %v)", created, err)
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreate(path); err == nil || !strings.Contains(err.Error(), "readable by group or others (mode 0644); run: chmod 600 ") {
		t.Errorf("world-readable token accepted: %v", err)
	}
}

func TestGuard(t *testing.T) {
	tok := &Token{secret: []byte("s3cret")}
	var refused []string
	g := &Guard{Token: tok, Refused: func(r string) { refused = append(refused, r) }}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("done")) }))
	tests := []struct {
		header string
		code   int
		body   string
	}{
		{"", 401, "needs the admin token"},
		{"Basic czNjcmV0", 401, "needs the admin token"},
		{"Bearer ", 401, "needs the admin token"},
		{"Bearer s3cre", 403, "not the admin token"},
		{"Bearer s3cret2", 403, "not the admin token"},
		{"Bearer s3cret", 200, "done"},
		{"bearer  s3cret ", 200, "done"},
	}
	for _, tc := range tests {
		req := httptest.NewRequest("POST", "/v1/power", nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("Authorization %q: %d %q, want %d %q", tc.header, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
		if tc.code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: 401 without WWW-Authenticate", tc.header)
		}
	}
	if got := strings.Join(refused, ","); got != "missing,missing,missing,wrong,wrong" {
		t.Errorf("refusals counted %q", got)
	}
}

// FuzzCheck: no Authorization header crashes Check, and only the exact
// token (after "Bearer ") passes.
func FuzzCheck(f *testing.F) {
	tok := &Token{secret: []byte("0123abcd")}
	for _, s := range []string{"", "Bearer 0123abcd", "bearer 0123abcd", "Bearer", "Basic x", "Bearer 0123abc", "Bearer  0123abcd  "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		reason, ok := tok.Check(header)
		if ok != (reason == "") {
			t.Fatalf("Check(%q) = %q, %v", header, reason, ok)
		}
		if ok && !strings.Contains(header, "0123abcd") {
			t.Fatalf("Check(%q) passed without the token", header)
		}
	})
}
