package bootserver

import (
	"moobi/bootserver/adminauth"
	"moobi/inventory"
	"moobi/power/fleet"
)

// adminGuard loads the admin token (data_dir/state/admin.token), creating
// it on the first start, and returns the guard of the admin endpoints.
func (s *Service) adminGuard(app inventory.Appliance) (*adminauth.Guard, error) {
	path := adminauth.Path(app.DataDir)
	tok, created, err := adminauth.LoadOrCreate(path)
	if err != nil {
		return nil, err
	}
	if created {
		s.Log.Info("admin token created: admin endpoints need it", "file", path)
	}
	return &adminauth.Guard{Token: tok, Refused: s.Metrics.AuthRefused(), Log: s.Log.With("component", "admin")}, nil
}

// powerRunner drives the BMCs of the inventory in force.
func (s *Service) powerRunner() *fleet.Runner {
	return &fleet.Runner{Inventory: s.Store.Current, Log: s.Log.With("component", "power"), Observe: s.observePower, Gate: s.powerPoll().Gate}
}
