package httpd

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodeapi"
)

// TestBootConfigCacheFallback: a profile's cache_fallback reaches the boot
// config as "ram", or not at all when it is the default (fail), so that a
// node that predates the field reads the same config as before.
func TestBootConfigCacheFallback(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:01")
	host := &inventory.Host{Name: "node01", MAC: mac, Profile: "web"}
	m := &catalog.Manifest{Name: "web", Version: "v1", InfoHash: strings.Repeat("ab", 20),
		Files: map[string]catalog.FileInfo{catalog.FileRootfs: {Size: 1 << 20, SHA256: strings.Repeat("0f", 32)}}}
	tests := []struct {
		name, cache, fallback string
		want                  string // cfg.CacheFallback
		inJSON                bool   // "cache_fallback" in the body
	}{
		{"RAM cache", "", "", "", false},
		{"cache device, default", "/dev/vda", inventory.CacheFallbackFail, "", false},
		{"cache device, fallback to RAM", "/dev/vda", inventory.CacheFallbackRAM, nodeapi.CacheFallbackRAM, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &inventory.Profile{Name: "web", Image: "web", Cache: tc.cache, CacheFallback: tc.fallback}
			cfg := BootConfig(host, p, m, "http://10.99.0.1:8080")
			if cfg.Cache != tc.cache || cfg.CacheFallback != tc.want {
				t.Fatalf("cache %q, cache_fallback %q; want %q, %q", cfg.Cache, cfg.CacheFallback, tc.cache, tc.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(cfg)
			if got := strings.Contains(string(body), `"cache_fallback"`); got != tc.inJSON {
				t.Fatalf("cache_fallback in the body: %v, want %v\n%s", got, tc.inJSON, body)
			}
		})
	}
}
