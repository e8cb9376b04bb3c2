package httpd

import (
	"net/http"
	"testing"
)

// TestOwnTokenCannotUseUpTheNodesAllowance: another host fetches the
// node's boot script and, with the token it got, asks for the node's boot
// config and posts events as fast as it can. It is limited (429) from its
// address; the node, asking with its own token from its own address, is
// not.
func TestOwnTokenCannotUseUpTheNodesAllowance(t *testing.T) {
	s, _ := imageServer(t)
	h := s.Handler()
	const node, attacker, mac = "10.0.0.5", "10.0.0.66", "52:54:00:12:34:01"
	boot, events := "/v1/nodes/"+mac+"/boot?version=v2", "/v1/nodes/"+mac+"/events"
	nodeToken := scriptToken(t, h, node)
	own := scriptToken(t, h, attacker)
	limited := 0
	for i := range 2 * NodeRequestBurst {
		w := from(h, "GET", attacker, boot, own, "")
		if i%2 == 1 {
			w = from(h, "POST", attacker, events, own, `{"state":"fetching"}`)
		}
		if w.Code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatalf("%d requests with its own token from one address, none limited", 2*NodeRequestBurst)
	}
	if w := from(h, "GET", node, boot, nodeToken, ""); w.Code != http.StatusOK {
		t.Errorf("the node's boot config after the other host's %d requests: status %d, want 200: %s", 2*NodeRequestBurst, w.Code, w.Body)
	}
	if w := from(h, "POST", node, events, nodeToken, `{"state":"fetching"}`); w.Code != http.StatusNoContent {
		t.Errorf("the node's event after the other host's requests: status %d, want 204: %s", w.Code, w.Body)
	}
}
