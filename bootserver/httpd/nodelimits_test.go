package httpd

import (
	"fmt"
	"testing"
	"time"
)

// Limiters idle for a minute (their bucket full again) are dropped: the
// map holds the keys active lately, not every key ever seen (hosts removed
// from the inventory, addresses gone).
func TestNodeLimitsPruned(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := &nodeLimits{now: func() time.Time { return now }}
	for i := range 500 {
		for range NodeRequestBurst {
			l.allow(fmt.Sprint("host", i), NodeRequestsPerSecond, NodeRequestBurst)
		}
	}
	if n := l.len(); n != 500 {
		t.Fatalf("%d limiters after 500 hosts, want 500", n)
	}
	// One host keeps posting; the others went quiet.
	for range 70 {
		now = now.Add(time.Second)
		if !l.allow("host7", NodeRequestsPerSecond, NodeRequestBurst) {
			t.Fatal("a host posting once a second was refused")
		}
	}
	if n := l.len(); n != 1 {
		t.Errorf("%d limiters after the others were idle 70 s, want 1 (host7)", n)
	}
}
