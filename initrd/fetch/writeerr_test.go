package fetch

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"moobi/nodeapi"
)

// TestCacheWriteFails: every write to the cache fails with ENOSPC
// (/dev/full, as a full tmpfs or disk would): the fetch ends at once with
// an error naming the cache, and reports a failed event, instead of
// waiting for a stall.
func TestCacheWriteFails(t *testing.T) {
	if f, err := os.OpenFile("/dev/full", os.O_RDWR, 0); err != nil {
		t.Skip("no writable /dev/full:", err)
	} else {
		f.Close()
	}
	a := newFakeAppliance(t, 1<<20)
	o := opts(a, t.TempDir())
	o.Path = "/dev/full"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Fetch(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "write to the cache /dev/full") || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err %v, want a write error naming /dev/full", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the write error took %v to end the fetch", d)
	}
	t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
	a.mu.Lock()
	defer a.mu.Unlock()
	if last := a.events[len(a.events)-1]; last.State != nodeapi.StateFailed || !strings.Contains(last.Reason, "write to the cache /dev/full") {
		t.Fatalf("last event %+v, want failed with the reason", last)
	}
}
