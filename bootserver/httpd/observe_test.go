package httpd

import (
	"encoding/json"
	"testing"

	"moobi/nodes"
)

// TestScriptFetchKeepsARunningNode: once the node reported running with
// its boot token, another host fetching its boot script leaves it running
// at its own address, and the fetch shows in its events; the node's own
// fetch from its address (a reboot) begins a new boot.
func TestScriptFetchKeepsARunningNode(t *testing.T) {
	s, _ := imageServer(t)
	h := s.Handler()
	const node, attacker, mac = "10.0.0.5", "10.0.0.66", "52:54:00:12:34:01"
	events := "/v1/nodes/" + mac + "/events"
	get := func() nodes.Node {
		t.Helper()
		w := from(h, "GET", node, "/v1/nodes/"+mac, "", "")
		var n nodes.Node
		if err := json.Unmarshal(w.Body.Bytes(), &n); err != nil {
			t.Fatalf("GET /v1/nodes/%s: %v: %s", mac, err, w.Body)
		}
		return n
	}
	tok := scriptToken(t, h, node)
	for _, e := range []string{`{"state":"fetching","image":"web","version":"v2"}`, `{"state":"running","image":"web","version":"v2"}`} {
		if w := from(h, "POST", node, events, tok, e); w.Code != 204 {
			t.Fatalf("the node's event %s: %d %s", e, w.Code, w.Body)
		}
	}
	before := get()
	scriptToken(t, h, attacker)
	n := get()
	if n.State != "running" || n.Address != node || n.Version != "v2" || n.Boots != before.Boots {
		t.Errorf("after another host's script fetch: %s at %s, version %s, boot %d; want running at %s, v2, boot %d",
			n.State, n.Address, n.Version, n.Boots, node, before.Boots)
	}
	const note = "iPXE fetched its boot script from " + attacker + " (unauthenticated; state kept)"
	if k := len(n.Events) - 1; k < 0 || n.Events[k].Message != note || n.Events[k].State != "running" {
		t.Errorf("events %+v; want the last one %q in state running", n.Events, note)
	}
	// The node reboots, with the same lease.
	scriptToken(t, h, node)
	if n := get(); n.State != "firmware" || n.Address != node || n.Boots != before.Boots+1 {
		t.Errorf("after the node's own script fetch: %s at %s, boot %d; want firmware at %s, boot %d", n.State, n.Address, n.Boots, node, before.Boots+1)
	}
}
