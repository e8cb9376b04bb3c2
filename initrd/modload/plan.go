package modload

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Wanted returns, sorted, the modules that the devices with the given
// modaliases ask for (see Match), and extra.
func Wanted(aliases []Alias, modaliases []string, extra []string) []string {
	set := map[string]bool{}
	for _, m := range modaliases {
		for _, name := range Match(aliases, m) {
			set[name] = true
		}
	}
	for _, name := range extra {
		set[strings.ReplaceAll(name, "-", "_")] = true
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Closure returns what to load for want, each module after its
// dependencies: want and everything it needs, less the modules in done
// (tried before: true if loaded, false if loading failed; a module that
// needs a failed one is skipped). have says whether a module's file is in the
// archive. A module that is not in modules.dep (built into the kernel, or
// of another tree) or not in the archive, or that needs such a module, is
// not loaded and is returned in skipped.
func Closure(mods map[string]Module, want []string, done map[string]bool, have func(Module) bool) (order, skipped []string) {
	state := map[string]int{} // 1 visiting, 2 in order, 3 skipped
	var visit func(name string) bool
	visit = func(name string) bool {
		if loaded, tried := done[name]; tried {
			if !loaded && state[name] != 3 {
				state[name] = 3
				skipped = append(skipped, name)
			}
			return loaded
		}
		switch state[name] {
		case 1, 2:
			return true // a cycle (modules.dep lists none) or already placed
		case 3:
			return false
		}
		m, ok := mods[name]
		if !ok || !have(m) {
			state[name] = 3
			skipped = append(skipped, name)
			return false
		}
		state[name] = 1
		deps := append([]string(nil), m.Deps...)
		sort.Strings(deps)
		for _, d := range deps {
			if !visit(d) {
				state[name] = 3
				skipped = append(skipped, name)
				return false
			}
		}
		state[name] = 2
		order = append(order, name)
		return true
	}
	for _, name := range want {
		visit(name)
	}
	return order, skipped
}

// LoadParallel loads the modules of order (as Closure returns it) with
// load, each as soon as those of its dependencies that are in order have
// loaded, many at once. A module whose dependency failed is not loaded.
// It returns each module's error (nil: loaded).
func LoadParallel(mods map[string]Module, order []string, load func(name string) error) map[string]error {
	type result struct {
		done chan struct{}
		err  error
	}
	res := make(map[string]*result, len(order))
	for _, name := range order {
		res[name] = &result{done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	for _, name := range order {
		r := res[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(r.done)
			for _, d := range mods[name].Deps {
				dr, ok := res[d]
				if !ok {
					continue // loaded before this round
				}
				<-dr.done
				if dr.err != nil {
					r.err = fmt.Errorf("dependency %s: %w", d, dr.err)
					return
				}
			}
			r.err = load(name)
		}()
	}
	wg.Wait()
	out := make(map[string]error, len(order))
	for name, r := range res {
		out[name] = r.err
	}
	return out
}

// IsNetwork reports whether a modalias is a network device's: a PCI
// device of class 02 (network controller) or a virtio network device.
// Their drivers load first, so that DHCP can start while the rest load.
// Other network devices (USB, Xen, Hyper-V) load with the rest.
func IsNetwork(modalias string) bool {
	switch {
	case strings.HasPrefix(modalias, "pci:"):
		// pci:vVVVVVVVVdDDDDDDDDsvSSSSSSSSsdSSSSSSSSbcCCscSSiII: the IDs are
		// upper-case hex, so "bc02sc" is the class.
		return strings.Contains(modalias, "bc02sc")
	case strings.HasPrefix(modalias, "virtio:"):
		return strings.HasPrefix(modalias, "virtio:d00000001v")
	}
	return false
}
