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

// moobi status shows each host's power: its state, the kind of a failing
// BMC read, "-" for a host without a BMC.
func TestStatusPower(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`[
{"name":"n1","mac":"52:54:00:12:34:01","state":"running","last_event":"running","power":{"state":"on","checked":"2026-12-05T00:00:00Z"}},
{"name":"n2","mac":"52:54:00:12:34:02","state":"unknown","last_event":"","power":{"state":"unknown","error":"unreachable","error_time":"2026-12-05T00:00:00Z"}},
{"name":"n3","mac":"52:54:00:12:34:03","state":"unknown","last_event":"","power":{"state":"off","checked":"2026-12-05T00:01:00Z","error":"auth","error_time":"2026-12-05T00:00:00Z"}},
{"name":"n4","mac":"52:54:00:12:34:04","state":"dhcp","last_event":"proxy DHCP"}]`))
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := status([]string{"--server", srv.URL}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if f := strings.Fields(lines[0]); len(f) < 4 || f[3] != "POWER" {
		t.Errorf("header %q: want POWER as the fourth column", lines[0])
	}
	for i, want := range []string{"on", "unknown (unreachable)", "off", "-"} {
		if !strings.Contains(lines[i+1], "  "+want+"  ") {
			t.Errorf("line %q: want power %q", lines[i+1], want)
		}
	}
}
