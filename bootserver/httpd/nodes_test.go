package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/boottoken"
	"moobi/inventory"
	"moobi/nodes"
)

func nodeServer(t *testing.T) *Server {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("kernel"), 0o644)
	inv, err := inventory.Parse(filepath.Join(dir, "hosts.yaml"), []byte(`appliance:
  interface: lo
profiles:
  rescue:
    kernel: `+filepath.Join(dir, "vmlinuz")+`
hosts:
  n1:
    mac: 52:54:00:12:34:01
    profile: rescue
  n2:
    mac: 52:54:00:12:34:02
    profile: rescue
`))
	if err != nil {
		t.Fatal(err)
	}
	return &Server{
		Inventory: func() *inventory.Inventory { return inv },
		BaseURL:   func() string { return "http://127.0.0.1" },
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Nodes:     nodes.New(),
	}
}

// nodeClient is a handler with the boot tokens of the scripts fetched
// through it (see tokenFor).
type nodeClient struct {
	http.Handler
	tokens map[string]string
}

func newNodeClient(s *Server) *nodeClient {
	return &nodeClient{Handler: s.Handler(), tokens: map[string]string{}}
}

// postEventFrom posts an event for mac from addr with the boot token of the
// script addr fetched for mac.
func postEventFrom(t *testing.T, c *nodeClient, addr, mac, body string) *httptest.ResponseRecorder {
	t.Helper()
	return from(c, "POST", addr, "/v1/nodes/"+mac+"/events", tokenFor(t, c, addr, mac), body)
}

// tokenFor is the boot token of a script fetched from addr for mac through
// c, fetched once.
func tokenFor(t *testing.T, c *nodeClient, addr, mac string) string {
	t.Helper()
	key := addr + " " + mac
	if tok, ok := c.tokens[key]; ok {
		return tok
	}
	w := from(c, "GET", addr, "/boot/"+mac+".ipxe", "", "")
	c.tokens[key] = boottoken.FromCmdline(w.Body.String())
	return c.tokens[key]
}

func TestEventsOnlyFromTheNodesAddress(t *testing.T) {
	s := nodeServer(t)
	h := newNodeClient(s)
	node := tokenFor(t, h, "10.0.0.5", "52:54:00:12:34:01")
	tests := []struct {
		name, addr, mac, body string
		code                  int
	}{
		{"first report binds", "10.0.0.5", "52:54:00:12:34:01", `{"state":"fetching"}`, 204},
		{"same address", "10.0.0.5", "52:54:00:12:34:01", `{"state":"verified"}`, 204},
		{"unknown MAC", "10.0.0.5", "52:54:00:99:99:99", `{"state":"running"}`, 404},
		{"malformed MAC", "10.0.0.5", "52:54:00", `{"state":"running"}`, 400},
		{"unknown state", "10.0.0.5", "52:54:00:12:34:01", `{"state":"pwned"}`, 400},
		{"unknown field", "10.0.0.5", "52:54:00:12:34:01", `{"state":"running","x":1}`, 400},
		{"oversized", "10.0.0.5", "52:54:00:12:34:01", `{"state":"running","message":"` + strings.Repeat("a", 20<<10) + `"}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := postEventFrom(t, h, tt.addr, tt.mac, tt.body); w.Code != tt.code {
				t.Errorf("status %d, want %d: %s", w.Code, tt.code, w.Body)
			}
		})
	}
	if w := from(h, "POST", "10.0.0.66", "/v1/nodes/52:54:00:12:34:01/events", node, `{"state":"failed","reason":"spoofed"}`); w.Code != 403 {
		t.Errorf("another host with the node's token: status %d, want 403", w.Code)
	}
	n, _ := s.Nodes.Get(s.Inventory(), mustMAC("52:54:00:12:34:01"))
	if n.State != "verified" || n.Reason != "" {
		t.Errorf("node state %q reason %q: a refused event changed it", n.State, n.Reason)
	}
}

func TestEventsRateLimited(t *testing.T) {
	s := nodeServer(t)
	h := newNodeClient(s)
	var ok, limited int
	for range NodeRequestBurst + 20 {
		switch w := postEventFrom(t, h, "10.0.0.5", "52:54:00:12:34:01", `{"state":"fetching"}`); w.Code {
		case 204:
			ok++
		case 429:
			limited++
			if w.Header().Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	}
	// The burst passes (plus what the rate refills during the loop); the
	// rest is refused. Another node is not affected.
	if ok < NodeRequestBurst || ok > NodeRequestBurst+5 || limited == 0 {
		t.Errorf("%d accepted, %d limited; want about %d accepted", ok, limited, NodeRequestBurst)
	}
	if w := postEventFrom(t, h, "10.0.0.6", "52:54:00:12:34:02", `{"state":"fetching"}`); w.Code != 204 {
		t.Errorf("other node: status %d", w.Code)
	}
}

// TestStream reads the live stream: every node first, then each change.
func TestStream(t *testing.T) {
	s := nodeServer(t)
	h := newNodeClient(s)
	tokenFor(t, h, "10.0.0.5", "52:54:00:12:34:02")
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan [2]string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				ev = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				events <- [2]string{ev, v}
			}
		}
		close(events)
	}()
	next := func(kind string) nodes.Node {
		t.Helper()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatal("stream ended")
				}
				if e[0] != kind {
					continue
				}
				var n nodes.Node
				if err := json.Unmarshal([]byte(e[1]), &n); err != nil {
					t.Fatalf("%s event: %v: %s", kind, err, e[1])
				}
				return n
			case <-ctx.Done():
				t.Fatalf("no %s event", kind)
			}
		}
	}
	got := map[string]string{}
	for range 2 {
		n := next("node")
		got[n.Name] = n.State
	}
	if got["n1"] != "unknown" || got["n2"] != "firmware" {
		t.Fatalf("first nodes: %v", got)
	}
	if w := postEventFrom(t, h, "10.0.0.5", "52:54:00:12:34:02", `{"state":"fetching","done":5,"total":10}`); w.Code != 204 {
		t.Fatalf("post: %d", w.Code)
	}
	n := next("node")
	if n.Name != "n2" || n.State != "fetching" || n.Done != 5 || len(n.Phases) != 2 {
		t.Errorf("update = %+v", n)
	}
}

func TestGetNodeTimeline(t *testing.T) {
	s := nodeServer(t)
	h := newNodeClient(s)
	postEventFrom(t, h, "10.0.0.5", "52:54:00:12:34:01", `{"state":"fetching"}`)
	postEventFrom(t, h, "10.0.0.5", "52:54:00:12:34:01", `{"state":"failed","reason":"no peers and no web seed"}`)
	for _, tt := range []struct {
		path string
		code int
	}{{"/v1/nodes/52:54:00:12:34:01", 200}, {"/v1/nodes/52:54:00:12:34:02", 200}, {"/v1/nodes/52:54:00:99:99:99", 404}, {"/v1/nodes/zz", 400}} {
		req := httptest.NewRequest("GET", tt.path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tt.code {
			t.Errorf("%s: status %d, want %d", tt.path, w.Code, tt.code)
		}
	}
	req := httptest.NewRequest("GET", "/v1/nodes/52:54:00:12:34:01", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var n nodes.Node
	if err := json.Unmarshal(w.Body.Bytes(), &n); err != nil {
		t.Fatal(err)
	}
	// firmware (the script that gave the token), fetching, failed
	if n.State != "failed" || n.LastError != "no peers and no web seed" || len(n.Phases) != 3 || len(n.Events) != 3 {
		t.Errorf("node = %+v", n)
	}
}

func mustMAC(s string) []byte {
	m, err := inventory.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
