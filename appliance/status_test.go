package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// moobi status sends the admin token of --token-file: an appliance with
// appliance.read_auth token answers /v1/nodes only with it.
func TestStatusTokenFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`[{"name":"rack1-node01","mac":"52:54:00:12:34:01","state":"running","last_event":"running"}]`))
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := status([]string{"--server", srv.URL, "--token-file", tok}, &out, &errb); code != 0 || !strings.Contains(out.String(), "rack1-node01") {
		t.Errorf("with the token: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := status([]string{"--server", srv.URL}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "401") {
		t.Errorf("without the token: exit %d, stderr %q", code, errb.String())
	}
}
