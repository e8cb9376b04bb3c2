package httpd

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"moobi/bootserver/adminauth"
)

// readOnlyPaths are the read-only views, each served with a 200 when
// allowed (the live stream apart: it never ends, only refusals are read).
var readOnlyPaths = []string{"/v1/nodes", "/v1/nodes/52:54:00:12:34:01", "/v1/swarm", "/metrics", "/", "/ui/app.js", "/v1/stream"}

func readOnlyServer(t *testing.T) (*Server, *adminauth.Token, string) {
	t.Helper()
	s, _, _ := setupServer(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("view")) })
	s.Metrics, s.Dashboard = ok, ok
	path := t.TempDir() + "/state/admin.token"
	tok, _, err := adminauth.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := adminauth.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s, tok, secret
}

// With appliance.read_auth token every read-only view needs the admin
// token; what nodes use while booting does not.
func TestReadAuthToken(t *testing.T) {
	s, tok, secret := readOnlyServer(t)
	guard := &adminauth.Guard{Token: tok}
	s.ReadAuth = guard.Wrap
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, p := range readOnlyPaths {
		if resp, _ := get(t, ts.URL+p); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", p, resp.StatusCode)
		}
		if resp, _ := get(t, ts.URL+p, "Authorization", "Bearer wrong"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s with another token: %d, want 403", p, resp.StatusCode)
		}
		if p == "/v1/stream" {
			continue
		}
		if resp, _ := get(t, ts.URL+p, "Authorization", "Bearer "+secret); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/healthz", "/boot/52-54-00-12-34-01.ipxe", "/profiles/rescue/kernel"} {
		if resp, _ := get(t, ts.URL+p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s (boot path) without a token: %d, want 200", p, resp.StatusCode)
		}
	}
}

// With appliance.admin_listen the read-only views leave the boot port and
// are served by AdminHandler alone.
func TestAdminElsewhere(t *testing.T) {
	s, _, _ := readOnlyServer(t)
	s.AdminElsewhere = true
	boot := httptest.NewServer(s.Handler())
	defer boot.Close()
	admin := httptest.NewServer(s.AdminHandler())
	defer admin.Close()
	for _, p := range readOnlyPaths {
		if resp, _ := get(t, boot.URL+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the boot port: %d, want 404", p, resp.StatusCode)
		}
		if p == "/v1/stream" {
			continue
		}
		if resp, _ := get(t, admin.URL+p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s on the admin address: %d, want 200", p, resp.StatusCode)
		}
	}
	if resp, _ := get(t, boot.URL+"/boot/52-54-00-12-34-01.ipxe"); resp.StatusCode != http.StatusOK {
		t.Errorf("boot script on the boot port: %d, want 200", resp.StatusCode)
	}
	if resp, _ := get(t, admin.URL+"/boot/52-54-00-12-34-01.ipxe"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("boot script on the admin address: %d, want 404", resp.StatusCode)
	}
}
