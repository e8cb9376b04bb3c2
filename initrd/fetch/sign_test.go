package fetch

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"moobi/bootsign"
	"moobi/nodeapi"
)

// TestRefusesUnverifiedBootConfig: the node holds the appliance's public
// key. A server that cannot produce a boot config signed with it — a rogue
// appliance with its own key, one that claims the appliance's key ID, a
// signature stripped or garbled, a signed body changed on the way — is
// refused before anything is downloaded, with an error that says why, and
// the failure is reported.
func TestRefusesUnverifiedBootConfig(t *testing.T) {
	legit := newFakeAppliance(t, 1<<20)
	id := bootsign.KeyID(legit.pub())
	const rogueKey = "a server that does not hold the appliance's signing key answered"
	tests := []struct {
		name string
		// server returns the fake appliance the node asks.
		server func(t *testing.T) *fakeAppliance
		want   []string
	}{
		{"rogue appliance with another key", func(t *testing.T) *fakeAppliance {
			return newFakeAppliance(t, 1<<20)
		}, []string{"signature does not verify with key ID " + id + " (signed with key ID ", rogueKey}},
		{"rogue claiming the appliance's key ID", func(t *testing.T) *fakeAppliance {
			r := newFakeAppliance(t, 1<<20)
			r.doctor = func(b []byte, _ string) ([]byte, string) {
				return b, bootsign.FormatHeader(id, ed25519.Sign(r.key, b))
			}
			return r
		}, []string{"signature does not verify with key ID " + id + ": " + rogueKey}},
		{"signature stripped", func(t *testing.T) *fakeAppliance {
			a := newFakeAppliance(t, 1<<20)
			a.key = legit.key
			a.doctor = func(b []byte, _ string) ([]byte, string) { return b, "" }
			return a
		}, []string{"signature missing: the response has no Moobi-Signature header: this node boots only boot configs signed with key ID " + id}},
		{"signature garbled", func(t *testing.T) *fakeAppliance {
			a := newFakeAppliance(t, 1<<20)
			a.key = legit.key
			a.doctor = func(b []byte, h string) ([]byte, string) { return b, strings.Replace(h, "keyid=", "kid=", 1) }
			return a
		}, []string{`malformed Moobi-Signature header: unknown parameter "kid"`, "signed with key ID " + id}},
		{"signed body changed on the way", func(t *testing.T) *fakeAppliance {
			a := newFakeAppliance(t, 1<<20)
			a.key = legit.key
			a.doctor = func(b []byte, h string) ([]byte, string) {
				return bytes.Replace(b, []byte(`"version":"v1"`), []byte(`"version":"v0"`), 1), h
			}
			return a
		}, []string{"signature does not verify with key ID " + id + ": " + rogueKey}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.server(t)
			o := opts(legit, t.TempDir())
			o.Server = srv.srv.URL
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := Fetch(ctx, o)
			if err == nil {
				s.Close()
				t.Fatal("fetched an image from a boot config that does not verify")
			}
			prefix := "boot config from " + srv.srv.URL + "/v1/nodes/52:54:00:12:34:01/boot: "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if srv.torrentGets != 0 || srv.served != 0 || legit.served != 0 {
				t.Errorf("downloaded something: %d torrent requests, %d web seed bytes", srv.torrentGets, srv.served+legit.served)
			}
			if ents, _ := os.ReadDir(o.Dir); len(ents) != 0 {
				t.Errorf("the cache folder holds %d files, want none", len(ents))
			}
			if n := len(srv.events); n == 0 || srv.events[n-1].State != nodeapi.StateFailed || srv.events[n-1].Reason != err.Error() {
				t.Errorf("events %+v, want a failed event with the error as its reason", srv.events)
			}
		})
	}
}

// TestRogueTorrent: the boot config is signed, but the torrent served at
// its URL is another one: its infohash does not match the signed config's,
// so it is refused and nothing is downloaded.
func TestRogueTorrent(t *testing.T) {
	a := newFakeAppliance(t, 1<<20)
	rogue := newFakeAppliance(t, 1<<20)
	a.torrent = rogue.torrent
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := opts(a, t.TempDir())
	_, err := Fetch(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "torrent "+a.srv.URL+"/t has infohash ") || !strings.Contains(err.Error(), "the boot config says") {
		t.Fatalf("err %v, want an infohash mismatch", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.served != 0 || rogue.served != 0 {
		t.Fatalf("web seeds sent %d bytes", a.served+rogue.served)
	}
	if ents, _ := os.ReadDir(o.Dir); len(ents) != 0 {
		t.Errorf("the cache folder holds %d files, want none", len(ents))
	}
	if last := a.events[len(a.events)-1]; last.State != nodeapi.StateFailed || !strings.Contains(last.Reason, "infohash") {
		t.Fatalf("last event %+v, want failed with the reason", last)
	}
}

// TestBootConfigChecks: without a key nothing is accepted unless unsigned
// configs are allowed (user-space tools); a config signed by the appliance
// but for another MAC (replayed) is refused.
func TestBootConfigChecks(t *testing.T) {
	a := newFakeAppliance(t, 1<<20)
	ctx := context.Background()

	o := opts(a, t.TempDir())
	o.PublicKey = nil
	if _, err := GetBootConfig(ctx, o); err == nil || !strings.Contains(err.Error(), "no public key to verify its signature with") {
		t.Fatalf("no key: %v", err)
	}
	a.doctor = func(b []byte, _ string) ([]byte, string) { return b, "" }
	o.AllowUnsigned = true
	if cfg, err := GetBootConfig(ctx, o); err != nil || cfg.Image != "web" {
		t.Fatalf("unsigned config with AllowUnsigned: %+v, %v", cfg, err)
	}
	o = opts(a, t.TempDir())
	o.AllowUnsigned = true // a key given is always checked
	if _, err := GetBootConfig(ctx, o); err == nil || !strings.Contains(err.Error(), "signature missing") {
		t.Fatalf("unsigned config, key given, AllowUnsigned: %v", err)
	}

	a.doctor = func(b []byte, _ string) ([]byte, string) {
		b = bytes.Replace(b, []byte("52:54:00:12:34:01"), []byte("52:54:00:12:34:99"), 1)
		return b, bootsign.NewSigner(a.key).Sign(b)
	}
	if _, err := GetBootConfig(ctx, opts(a, t.TempDir())); err == nil || !strings.Contains(err.Error(), `is for MAC "52:54:00:12:34:99", not this node's 52:54:00:12:34:01`) {
		t.Fatalf("config for another MAC: %v", err)
	}
	a.doctor = nil
	if _, err := GetBootConfig(ctx, opts(a, t.TempDir())); err != nil {
		t.Fatalf("signed config: %v", err)
	}
}

// TestReplayedBootConfig: the node boots version v2 (its kernel command
// line's moobi.version) with boot token T2. A config the appliance signed
// for an earlier request — v1's, captured on the wire — is replayed to it,
// or signed afresh for another host's request that carried this node's
// nonce, or for this boot's token but the older version: each is refused
// with an error naming what differs. The config answering this request is
// accepted.
func TestReplayedBootConfig(t *testing.T) {
	a := newFakeAppliance(t, 1<<20)
	resign := func(change func(c *nodeapi.BootConfig)) func([]byte, string) ([]byte, string) {
		return func(b []byte, _ string) ([]byte, string) {
			var c nodeapi.BootConfig
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			change(&c)
			b, _ = json.Marshal(c)
			return b, bootsign.NewSigner(a.key).Sign(b)
		}
	}
	// A v1 config signed for an earlier boot's request, as captured.
	o1 := opts(a, t.TempDir())
	o1.Version, o1.BootToken = "v1", "T1"
	var captured []byte
	var capturedSig string
	a.doctor = func(b []byte, h string) ([]byte, string) { captured, capturedSig = b, h; return b, h }
	if _, err := GetBootConfig(context.Background(), o1); err != nil {
		t.Fatalf("the v1 boot's own config: %v", err)
	}
	const prefix = "boot config from "
	tests := []struct {
		name   string
		doctor func([]byte, string) ([]byte, string)
		want   string // "" = accepted
	}{
		{"captured v1 config replayed", func([]byte, string) ([]byte, string) { return captured, capturedSig },
			`answers nonce "`},
		{"v1 signed for another host's request with this nonce", resign(func(c *nodeapi.BootConfig) { c.Version, c.Boot = "v1", "T-other" }),
			`is for boot token "T-other", not this boot's "T2": a signed config of another boot, replayed`},
		{"v1 signed for this boot and nonce", resign(func(c *nodeapi.BootConfig) { c.Version = "v1" }),
			`is for version "v1", but this node asked for "v2" (the version its kernel was booted for)`},
		{"no nonce (an appliance that does not echo it)", resign(func(c *nodeapi.BootConfig) { c.Version, c.Nonce = "v2", "" }),
			`answers nonce "", not this request's `},
		{"another MAC's", resign(func(c *nodeapi.BootConfig) { c.Version, c.MAC = "v2", "52:54:00:12:34:99" }),
			`is for MAC "52:54:00:12:34:99", not this node's 52:54:00:12:34:01`},
		{"this request's config", resign(func(c *nodeapi.BootConfig) { c.Version = "v2" }), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a.mu.Lock()
			a.doctor = tc.doctor
			a.mu.Unlock()
			o := opts(a, t.TempDir())
			o.Version, o.BootToken = "v2", "T2"
			cfg, err := GetBootConfig(context.Background(), o)
			if tc.want == "" {
				if err != nil || cfg.Version != "v2" {
					t.Fatalf("config %+v, %v; want v2 accepted", cfg, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %s %s", cfg.Image, cfg.Version)
			}
			if !strings.HasPrefix(err.Error(), prefix+a.srv.URL+"/v1/nodes/52:54:00:12:34:01/boot?version=v2 ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}
