package power

import (
	"context"
	"fmt"
	"sync"
)

// Gate lets one call at a time reach each BMC: BMCs hold few sessions,
// and some (OpenIPMI's simulator among them) leave a session unanswered
// while another one is being opened. The background power reads and the
// power actions share one Gate. A nil Gate lets every call through.
type Gate struct {
	mu    sync.Mutex
	slots map[string]chan struct{} // by BMC address
}

// Enter waits until no other call holds bmc (or ctx ends) and returns
// the function that lets the next one in.
func (g *Gate) Enter(ctx context.Context, bmc string) (leave func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	g.mu.Lock()
	if g.slots == nil {
		g.slots = map[string]chan struct{}{}
	}
	slot := g.slots[bmc]
	if slot == nil {
		slot = make(chan struct{}, 1)
		g.slots[bmc] = slot
	}
	g.mu.Unlock()
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for another call to BMC %s: %w", bmc, ctx.Err())
	}
}
