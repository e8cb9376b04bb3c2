package bootserver

import (
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"moobi/images/tracker"
	"moobi/nodeapi"
	"moobi/nodes"
)

// A host counts as booted for the tracker once the node at its address
// reported a state its initramfs reaches only after a verified config.
func TestBootedAt(t *testing.T) {
	reg := nodes.New()
	booted := bootedAt(reg)
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 1}
	addr := netip.MustParseAddr("10.99.0.21")
	if booted(addr) {
		t.Fatal("unknown address booted")
	}
	reg.Addressed(mac, "n1", addr)
	for _, tc := range []struct {
		state string
		want  bool
	}{
		{nodeapi.StateKernel, false},
		{nodeapi.StateFetching, true},
		{nodeapi.StateVerified, true},
		{nodeapi.StateRunning, true},
		{nodeapi.StateFailed, false},
	} {
		reg.Report(mac, "n1", nodeapi.Event{State: tc.state, Reason: "r"}, addr.String())
		if got := booted(addr); got != tc.want {
			t.Errorf("node in %s: booted %v, want %v", tc.state, got, tc.want)
		}
		if booted(netip.MustParseAddr("10.99.0.22")) {
			t.Errorf("node in %s: another address booted", tc.state)
		}
	}
	if !onNetworks([]netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")})(addr) ||
		onNetworks([]netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")})(netip.MustParseAddr("10.98.0.1")) ||
		!onNetworks(nil)(netip.MustParseAddr("127.0.0.1")) {
		t.Error("onNetworks")
	}
}

// A running node's address stays booted, and an attacker's does not
// become so, whatever unauthenticated observation names the node or its
// address: only the node's own events (which carry its boot token) move it.
func TestBootedAtIgnoresUnauthenticated(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 1}
	idle := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 2}
	own, attacker := netip.MustParseAddr("10.99.0.21"), netip.MustParseAddr("10.99.0.66")
	for _, tc := range []struct {
		name    string
		observe func(reg *nodes.Registry)
	}{
		{"script fetch from another host", func(reg *nodes.Registry) {
			reg.Seen(mac, "n1", nodeapi.StateFirmware, "iPXE fetched its boot script", attacker.String())
		}},
		{"proxy DHCP naming the node", func(reg *nodes.Registry) {
			reg.SeenDHCP(mac, "n1", true, "proxy DHCP: iPXE asked for its script")
		}},
		{"DHCP request naming the node, for the attacker's address", func(reg *nodes.Registry) {
			reg.Addressed(mac, "n1", attacker)
			reg.SeenAt(attacker.String(), nodeapi.StateFirmware, "TFTP: undionly.kpxe")
		}},
		{"DHCP naming an idle host, for the node's address", func(reg *nodes.Registry) {
			reg.SeenDHCP(idle, "n2", false, "proxy DHCP: undionly.kpxe")
			reg.Addressed(idle, "n2", own)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := nodes.New()
			booted := bootedAt(reg)
			reg.Addressed(mac, "n1", own)
			reg.Report(mac, "n1", nodeapi.Event{State: nodeapi.StateRunning}, own.String())
			tc.observe(reg)
			if !booted(own) {
				t.Errorf("the running node's address %s no longer counts as booted", own)
			}
			if booted(attacker) {
				t.Errorf("the attacker's address %s counts as booted", attacker)
			}
		})
	}
}

// The seeder pauses its upload by the seeders restSeeders counts: an
// announce with left=0 from a host that did not boot adds none, so it
// cannot make the appliance stop serving an image; the same announce from
// a booted node's address does.
func TestRestSeedersCountsBootedOnly(t *testing.T) {
	reg := nodes.New()
	ih := [20]byte{0xaa, 1, 2, 3}
	track := tracker.New(tracker.Options{
		Known:  func(h [20]byte) bool { return h == ih },
		Booted: bootedAt(reg),
	})
	seeders := restSeeders(track)
	announce := func(addr string, port int) {
		t.Helper()
		v := url.Values{
			"info_hash": {string(ih[:])}, "peer_id": {fmt.Sprintf("-XX0001-%012d", port)},
			"port": {strconv.Itoa(port)}, "uploaded": {"0"}, "downloaded": {"0"}, "left": {"0"}, "compact": {"1"},
		}
		r := httptest.NewRequest("GET", "/announce?"+v.Encode(), nil)
		r.RemoteAddr = addr + ":40000"
		w := httptest.NewRecorder()
		track.ServeHTTP(w, r)
		if strings.Contains(w.Body.String(), "failure reason") {
			t.Fatalf("announce from %s: %s", addr, w.Body)
		}
	}
	// A host that never booted announces as a seeder from many ports.
	for port := 7000; port < 7010; port++ {
		announce("10.99.0.66", port)
	}
	if sw := track.Swarm(ih); sw.Seeders == 0 {
		t.Fatalf("the tracker stored none of the announces: %+v", sw)
	}
	if n := seeders(ih); n != 0 {
		t.Fatalf("an address that did not boot counts as %d seeders for the appliance's rest", n)
	}
	// A node that booted (reported fetching, then running from its address).
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 2}
	addr := netip.MustParseAddr("10.99.0.21")
	reg.Addressed(mac, "n2", addr)
	reg.Report(mac, "n2", nodeapi.Event{State: nodeapi.StateRunning}, addr.String())
	announce(addr.String(), 6881)
	if n := seeders(ih); n != 1 {
		t.Fatalf("a booted node holding the image counts as %d seeders, want 1", n)
	}
}
