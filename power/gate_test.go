package power

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGate checks that calls to one BMC run one at a time, calls to
// different BMCs at once, and that a wait ends with its context.
func TestGate(t *testing.T) {
	var g Gate
	var busy, peak atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leave, err := g.Enter(context.Background(), "10.0.0.1:623")
			if err != nil {
				t.Error(err)
				return
			}
			defer leave()
			n := busy.Add(1)
			if n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(10 * time.Millisecond)
			busy.Add(-1)
		}()
	}
	wg.Wait()
	if peak.Load() != 1 {
		t.Errorf("%d calls to one BMC at once, want 1", peak.Load())
	}
	leave, _ := g.Enter(context.Background(), "10.0.0.1:623")
	other, err := g.Enter(context.Background(), "10.0.0.2:623")
	if err != nil {
		t.Fatalf("another BMC waited for the first: %v", err)
	}
	other()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.Enter(ctx, "10.0.0.1:623"); err == nil {
		t.Error("a second call to a held BMC entered")
	}
	leave()
	var nilGate *Gate
	if l, err := nilGate.Enter(context.Background(), "x"); err != nil || l == nil {
		t.Errorf("nil gate: %v", err)
	}
}
