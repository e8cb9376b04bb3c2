package httpd

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// GET /ipxe/{name} serves the configured iPXE binaries, and nothing else
// of ipxe_dir or beyond it.
func TestIPXEBinary(t *testing.T) {
	s, _, _ := setupServer(t)
	dir := s.Inventory().Appliance.IPXEDir
	os.WriteFile(filepath.Join(dir, "ipxe.efi"), []byte("EFI-IPXE"), 0o644)
	os.WriteFile(filepath.Join(dir, "other.efi"), []byte("OTHER"), 0o644)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	srv := hs.URL
	tests := []struct {
		path string
		code int
		body string
	}{
		{IPXEPath("ipxe.efi"), 200, "EFI-IPXE"},
		{IPXEPath("undionly.kpxe"), 404, ""}, // configured, not installed
		{IPXEPath("other.efi"), 404, ""},
		{"/ipxe/..%2fsecret", 404, ""},
		{"/ipxe/", 404, ""},
	}
	for _, tc := range tests {
		resp, body := get(t, srv+tc.path)
		if resp.StatusCode != tc.code || (tc.body != "" && string(body) != tc.body) {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}
}
