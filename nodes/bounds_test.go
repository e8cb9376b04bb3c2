package nodes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moobi/nodeapi"
)

// 500 nodes posting 40 events each, every text field 1024 '<' (each of
// which JSON writes as six bytes): the state file stays within the
// per-node bounds, and each node keeps its newest events.
func TestEventFloodBounded(t *testing.T) {
	r, c, _ := newTestRegistry()
	flood := strings.Repeat("<", 1024)
	const nodes, events = 500, 40
	for i := range nodes {
		for j := range events {
			c.add(time.Millisecond)
			r.Report(benchMAC(i), fmt.Sprint("n", i), nodeapi.Event{
				State: nodeapi.StateFailed, Message: fmt.Sprint(j, flood), Reason: flood, Image: flood, Version: flood,
			}, "")
		}
	}
	path := filepath.Join(t.TempDir(), "nodes.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Per node: the event log, and room for the other fields (four texts
	// of at most MaxTextBytes, phases, figures).
	bound := int64(nodes * (MaxLogBytes + 8<<10))
	t.Logf("nodes.json: %d bytes (%.1f MiB) for %d nodes x %d events; bound %d", st.Size(), float64(st.Size())/(1<<20), nodes, events, bound)
	if st.Size() > bound {
		t.Errorf("nodes.json is %d bytes, want at most %d", st.Size(), bound)
	}
	n, ok := r.Get(twoHostInventory(t), benchMAC(7))
	if !ok || len(n.Events) == 0 {
		t.Fatalf("node 7: %v, %d events", ok, len(n.Events))
	}
	last := n.Events[len(n.Events)-1]
	if !strings.HasPrefix(last.Message, fmt.Sprint(events-1, "<")) {
		t.Errorf("newest event %.20q..., want the 40th", last.Message)
	}
	for _, s := range []string{last.Message, last.Reason, n.Reason, n.LastError, n.Image, n.Version} {
		if b, _ := json.Marshal(s); len(b) > MaxTextBytes || !strings.HasSuffix(s, "...") {
			t.Errorf("text of %d bytes encoded (%.20q...), want at most %d and marked cut", len(b), s, MaxTextBytes)
		}
	}
	if b, _ := json.Marshal(n.Events); len(b) > MaxLogBytes {
		t.Errorf("event log of %d bytes encoded, want at most %d", len(b), MaxLogBytes)
	}
}

func TestClipText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 512, "short"},
		{strings.Repeat("a", 600), 20, strings.Repeat("a", 15) + "..."},
		{strings.Repeat("<", 600), 20, "<<..."},
		{"ab\xffcd", 11, "ab..."},
		{"é\n\x01", 512, "é\n\x01"},
	} {
		got := clipText(tc.in, tc.max)
		b, _ := json.Marshal(got)
		if got != tc.want || len(b) > tc.max {
			t.Errorf("clipText(%.20q, %d) = %q (%d bytes encoded), want %q", tc.in, tc.max, got, len(b), tc.want)
		}
	}
}

// FuzzClipText checks encodedLen against encoding/json, and that a clipped
// text encodes within its bound.
func FuzzClipText(f *testing.F) {
	for _, s := range []string{"", "plain", "<>&\"\\\n\t\b\f\x01", "\xff\xfe", "\u2028\ufffd", strings.Repeat("<é", 100)} {
		f.Add(s, 20)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		b, _ := json.Marshal(s)
		if n := encodedLen(s); n != len(b) {
			t.Fatalf("encodedLen(%q) = %d, encoding/json writes %d", s, n, len(b))
		}
		max = 8 + max&1023
		c := clipText(s, max)
		if b, _ := json.Marshal(c); len(b) > max {
			t.Fatalf("clipText(%q, %d) = %q: %d bytes encoded", s, max, c, len(b))
		}
		if c != s && !strings.HasPrefix(s, strings.TrimSuffix(c, "...")) {
			t.Fatalf("clipText(%q, %d) = %q is not a prefix", s, max, c)
		}
	})
}
