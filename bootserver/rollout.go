package bootserver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodes"
	"moobi/power"
	"moobi/power/fleet"
	"moobi/rollout"
)

// rollouts builds the rollout runner over the appliance's BMCs, node
// registry and catalog, its state restored from data_dir/state; a state
// file that does not load is moved aside (and said so), not overwritten.
func (s *Service) rollouts(app inventory.Appliance, reg *nodes.Registry, cat *catalog.Catalog, pw *fleet.Runner) *rollout.Runner {
	ro := &rollout.Runner{
		Path:      filepath.Join(app.DataDir, "state", rollout.FileName),
		Power:     fleetPXE{pw},
		Nodes:     registryNodes{reg: reg, inv: s.Store.Current},
		Catalog:   catalogVersions{cat},
		Inventory: func() ([]power.Host, map[string]string) { return inventoryHosts(s.Store.Current()) },
		Log:       s.Log.With("component", "rollout"),
	}
	if err := ro.Load(); err != nil {
		s.Log.Error("rollouts not restored", "err", err)
	} else if n := len(ro.List()); n > 0 {
		s.Log.Info("rollouts restored", "file", ro.Path, "rollouts", n)
	}
	ro.BatchDone = s.Metrics.Rollouts(ro.HostCounts, ro.StateCounts)
	return ro
}

// inventoryHosts is the rollouts' view of an inventory: its hosts and the
// image each boots.
func inventoryHosts(inv *inventory.Inventory) ([]power.Host, map[string]string) {
	imageOf := make(map[string]string, len(inv.Hosts))
	for name, h := range inv.Hosts {
		if p := inv.Profiles[h.Profile]; p != nil {
			imageOf[name] = p.Image
		}
	}
	return fleet.Hosts(inv), imageOf
}

// fleetPXE power-cycles hosts into a network boot through their BMCs.
type fleetPXE struct{ r *fleet.Runner }

func (f fleetPXE) PXE(ctx context.Context, hosts []string) map[string]error {
	out := make(map[string]error, len(hosts))
	res, err := f.r.Run(ctx, power.ActionPXE, hosts)
	for _, h := range hosts {
		out[h] = err
	}
	if err != nil {
		return out
	}
	for _, x := range res {
		out[x.Host] = resultErr(x)
	}
	return out
}

// resultErr is a fleet result as an error (nil: done) that keeps its
// kind: a refused password wraps power.ErrAuth, which rollouts do not try
// again (another try may lock the BMC's account), and an unanswered call
// power.ErrUnreachable.
func resultErr(x fleet.Result) error {
	if x.OK {
		return nil
	}
	var kind error
	switch x.Kind {
	case "auth":
		kind = power.ErrAuth
	case "unreachable":
		kind = power.ErrUnreachable
	}
	return kindError{msg: fmt.Sprintf("%s (%s)", x.Error, x.Kind), kind: kind}
}

type kindError struct {
	msg  string
	kind error
}

func (e kindError) Error() string { return e.msg }
func (e kindError) Unwrap() error { return e.kind }

// registryNodes reports the node registry's view of each host.
type registryNodes struct {
	reg *nodes.Registry
	inv func() *inventory.Inventory
}

func (r registryNodes) Observe() map[string]rollout.Observation {
	inv := r.inv()
	out := make(map[string]rollout.Observation, len(inv.Hosts))
	for _, n := range r.reg.List(inv) {
		if _, listed := inv.Hosts[n.Name]; !listed {
			continue
		}
		out[n.Name] = rollout.Observation{State: n.State, Image: n.Image, Version: n.Version, Reason: n.Reason, BootStarted: n.BootStarted}
	}
	return out
}

// catalogVersions is the catalog as rollouts use it.
type catalogVersions struct{ c *catalog.Catalog }

func (c catalogVersions) Versions(image string) (string, []string, error) {
	imgs, err := c.c.List()
	if err != nil {
		return "", nil, err
	}
	for _, img := range imgs {
		if img.Name == image {
			vs := make([]string, 0, len(img.Versions))
			for _, m := range img.Versions {
				vs = append(vs, m.Version)
			}
			return img.Current, vs, nil
		}
	}
	return "", nil, errors.New("not in the catalog (moobi image list)")
}

func (c catalogVersions) SetCurrent(image, version string) error {
	return c.c.SetCurrent(image, version)
}
