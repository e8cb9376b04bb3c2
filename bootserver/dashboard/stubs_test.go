package dashboard_test

import (
	"context"
	"errors"
	"sync"
	"time"

	"moobi/power"
	"moobi/rollout"
)

// stubBMC answers power status with what the test sets; it drives no
// machine.
type stubBMC struct {
	mu    sync.Mutex
	state power.State
	err   error
}

func (b *stubBMC) set(st power.State, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state, b.err = st, err
}

func (b *stubBMC) Status(context.Context) (power.State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state, b.err
}
func (*stubBMC) On(context.Context) error  { return errors.New("the dashboard test drives no machine") }
func (*stubBMC) Off(context.Context) error { return errors.New("the dashboard test drives no machine") }
func (*stubBMC) Cycle(context.Context) error {
	return errors.New("the dashboard test drives no machine")
}
func (*stubBMC) PXE(context.Context) error { return errors.New("the dashboard test drives no machine") }

// stubPower is the rollouts' power: every pxe action succeeds at once,
// and is recorded.
type stubPower struct {
	mu     sync.Mutex
	cycled []string
}

func (p *stubPower) PXE(_ context.Context, hosts []string) map[string]error {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]error{}
	for _, h := range hosts {
		p.cycled = append(p.cycled, h)
		out[h] = nil
	}
	return out
}

// stubNodes is what the rollouts see of the nodes: what the test sets.
type stubNodes struct {
	mu  sync.Mutex
	obs map[string]rollout.Observation
}

func (n *stubNodes) set(host string, o rollout.Observation) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.obs == nil {
		n.obs = map[string]rollout.Observation{}
	}
	n.obs[host] = o
}

func (n *stubNodes) Observe() map[string]rollout.Observation {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]rollout.Observation, len(n.obs))
	for k, v := range n.obs {
		out[k] = v
	}
	return out
}

// twoVersions is a catalog whose image web has v1 (current) and v2.
type twoVersions struct{}

func (twoVersions) Versions(image string) (string, []string, error) {
	if image != "web" {
		return "", nil, errors.New("not in the catalog")
	}
	return "v1", []string{"v1", "v2"}, nil
}
func (twoVersions) SetCurrent(string, string) error { return errors.New("not in this test") }

// running is a node's observation: running image web at version, in a
// boot that began now.
func running(version string) rollout.Observation {
	return rollout.Observation{State: "running", Image: "web", Version: version, BootStarted: time.Now()}
}
