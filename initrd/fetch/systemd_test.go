package fetch

import (
	"slices"
	"strings"
	"testing"

	"moobi/nodeapi"
)

func TestSystemdEvent(t *testing.T) {
	for _, c := range []struct {
		state  string
		failed []string
		done   bool
		want   string // state
		reason string
	}{
		{"initializing", nil, false, "", ""},
		{"starting\n", nil, false, "", ""},
		{"", nil, false, "", ""},
		{"offline", nil, false, "", ""},
		{"running\n", nil, true, nodeapi.StateRunning, ""},
		{"degraded", []string{"ssh.service", "foo.mount"}, true, nodeapi.StateDegraded, "failed units: ssh.service, foo.mount"},
		{"degraded", nil, true, nodeapi.StateDegraded, "lists no failed unit"},
		{"maintenance", nil, true, nodeapi.StateFailed, "systemd is maintenance, not running"},
		{"stopping", nil, true, nodeapi.StateFailed, "systemd is stopping"},
	} {
		e, done := systemdEvent(c.state, c.failed, "debian", "v2")
		if done != c.done || done && (e.State != c.want || !strings.Contains(e.Reason, c.reason) || e.Image != "debian" || e.Version != "v2") {
			t.Errorf("systemdEvent(%q) = %+v, %v", c.state, e, done)
		}
	}
	long := make([]string, 200)
	for i := range long {
		long[i] = "some-rather-long-unit-name.service"
	}
	if e, _ := systemdEvent("degraded", long, "i", "v"); len(e.Reason) > 1024 {
		t.Errorf("reason of %d bytes: the appliance refuses events over 1024", len(e.Reason))
	}
}

func TestParseFailedUnits(t *testing.T) {
	out := "● ssh.service loaded failed failed OpenBSD Secure Shell server\nsystemd-networkd-wait-online.service loaded failed failed Wait for Network\n\n"
	if got := parseFailedUnits(out); !slices.Equal(got, []string{"ssh.service", "systemd-networkd-wait-online.service"}) {
		t.Fatalf("parseFailedUnits = %q", got)
	}
}
