package httpd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"moobi/bootsign"
	"moobi/boottoken"
	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodeapi"
	"moobi/nodes"
)

// imageServer is a Server whose host node01 (52:54:00:12:34:01) boots
// image web, with versions v1 and v2 (current), signing with a fresh key.
func imageServer(t *testing.T) (*Server, ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bzImage"), []byte("MZ kernel"), 0o644)
	os.WriteFile(filepath.Join(dir, "root.squashfs"), append([]byte(catalog.SquashfsMagic), make([]byte, 10_000)...), 0o644)
	cat, err := catalog.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		if _, err := cat.Publish(context.Background(), "web", catalog.Sources{Kernel: filepath.Join(dir, "bzImage"), Rootfs: filepath.Join(dir, "root.squashfs")}, catalog.PublishOptions{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := inventory.Parse(filepath.Join(dir, "hosts.yaml"), []byte(`appliance:
  interface: br0
profiles:
  web:
    image: web
hosts:
  node01:
    mac: 52:54:00:12:34:01
    profile: web
`))
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	return &Server{
		Inventory: func() *inventory.Inventory { return inv },
		BaseURL:   func() string { return "http://10.99.0.1:8080" },
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Nodes:     nodes.New(),
		Catalog:   cat,
		Signer:    bootsign.NewSigner(key),
	}, pub
}

// from sends a request to h as the host at addr would, with the boot
// token (if any) and a fresh nonce.
func from(h http.Handler, method, addr, path, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = addr + ":40000"
	if token != "" {
		req.Header.Set(boottoken.Header, token)
	}
	req.Header.Set(nodeapi.NonceHeader, strings.Repeat("ab", 16))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// scriptToken fetches the node's boot script from addr and returns the
// boot token it sets.
func scriptToken(t *testing.T, h http.Handler, addr string) string {
	t.Helper()
	w := from(h, "GET", addr, "/boot/52:54:00:12:34:01.ipxe", "", "")
	if w.Code != 200 {
		t.Fatalf("script from %s: %d %s", addr, w.Code, w.Body)
	}
	return boottoken.FromCmdline(w.Body.String())
}

// TestScriptFetchCannotTakeOverANode: another host on the boot VLAN fetches
// the node's boot script (again and again), and sends a proxy DHCP request
// naming the node's MAC from its own address. The node still gets its boot
// config and posts its events with the token of its own script; the other
// host cannot use the node's token, gets tokens of its own only, and is
// rate-limited. After a reboot from another address the node is served
// again, and its earlier boot's token is refused.
func TestScriptFetchCannotTakeOverANode(t *testing.T) {
	s, _ := imageServer(t)
	h := s.Handler()
	const node, attacker, mac = "10.0.0.5", "10.0.0.66", "52:54:00:12:34:01"
	boot, events := "/v1/nodes/"+mac+"/boot?version=v2", "/v1/nodes/"+mac+"/events"

	nodeToken := scriptToken(t, h, node)
	var own string
	for range 5 {
		own = scriptToken(t, h, attacker)
	}
	if own == "" || own == nodeToken {
		t.Fatalf("tokens: node %q, other host %q; want two different ones", nodeToken, own)
	}
	// Proxy DHCP heard a request naming the node's MAC from the attacker.
	s.Nodes.Addressed(mustMAC(mac), "node01", netip.MustParseAddr(attacker))

	check := func(what string, w *httptest.ResponseRecorder, code int) {
		t.Helper()
		if w.Code != code {
			t.Errorf("%s: status %d, want %d: %s", what, w.Code, code, w.Body)
		}
	}
	check("the node's boot config", from(h, "GET", node, boot, nodeToken, ""), 200)
	check("the node's event", from(h, "POST", node, events, nodeToken, `{"state":"fetching"}`), 204)
	check("the other host without a token", from(h, "GET", attacker, boot, "", ""), 403)
	check("the other host with the node's token", from(h, "GET", attacker, boot, nodeToken, ""), 403)
	check("the other host's event with the node's token", from(h, "POST", attacker, events, nodeToken, `{"state":"failed","reason":"spoofed"}`), 403)
	check("the other host's event without a token", from(h, "POST", attacker, events, "", `{"state":"failed","reason":"spoofed"}`), 403)
	check("the other host with a token of its own", from(h, "GET", attacker, boot, own, ""), 200)
	check("the node again", from(h, "GET", node, boot, nodeToken, ""), 200)
	check("the node's next event", from(h, "POST", node, events, nodeToken, `{"state":"verified"}`), 204)
	if w := from(h, "GET", node, boot, nodeToken, ""); !strings.Contains(w.Body.String(), `"boot": "`+nodeToken+`"`) {
		t.Errorf("the config does not carry the node's token:\n%s", w.Body)
	}

	// The other host fetches scripts as fast as it can: past the burst it
	// is refused; the node's own fetch is not.
	limited := 0
	for range ScriptRequestBurst + 5 {
		if w := from(h, "GET", attacker, "/boot/"+mac+".ipxe", "", ""); w.Code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("%d script fetches from one address in a row, none refused", ScriptRequestBurst+5)
	}

	// The node reboots and leases another address: its new boot is served;
	// from its old address, the token of the boot before is not.
	const newAddr = "10.0.0.7"
	next := scriptToken(t, h, newAddr)
	check("the next boot's config", from(h, "GET", newAddr, boot, next, ""), 200)
	check("the next boot's event", from(h, "POST", newAddr, events, next, `{"state":"fetching"}`), 204)
	again := scriptToken(t, h, node)
	check("a later boot from the first address", from(h, "GET", node, boot, again, ""), 200)
	check("the first boot's token after it", from(h, "GET", node, boot, nodeToken, ""), 403)
}

// TestBootConfigEchoesNonce: the signed config carries the request's nonce
// and boot token; a request without a well-formed nonce is refused.
func TestBootConfigEchoesNonce(t *testing.T) {
	s, pub := imageServer(t)
	h := s.Handler()
	token := scriptToken(t, h, "10.0.0.5")
	for _, tc := range []struct {
		nonce string
		code  int
	}{
		{strings.Repeat("0f", 16), 200},
		{strings.Repeat("0f", 32), 200},
		{"", 400},
		{strings.Repeat("0f", 15), 400},
		{strings.Repeat("zz", 16), 400},
		{strings.Repeat("0f", 33), 400},
	} {
		req := httptest.NewRequest("GET", "/v1/nodes/52:54:00:12:34:01/boot", nil)
		req.RemoteAddr = "10.0.0.5:40000"
		req.Header.Set(boottoken.Header, token)
		req.Header.Set(nodeapi.NonceHeader, tc.nonce)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.code {
			t.Errorf("nonce %q: status %d, want %d: %s", tc.nonce, w.Code, tc.code, w.Body)
			continue
		}
		if tc.code != 200 {
			continue
		}
		if err := bootsign.Verify(pub, w.Body.Bytes(), w.Header().Get(bootsign.Header)); err != nil {
			t.Fatal(err)
		}
		cfg, err := nodeapi.DecodeBootConfig(w.Body.Bytes())
		if err != nil || cfg.Nonce != tc.nonce || cfg.Boot != token {
			t.Errorf("config nonce %q boot %q (%v), want %q %q", cfg.Nonce, cfg.Boot, err, tc.nonce, token)
		}
	}
}
