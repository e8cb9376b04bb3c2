package bootserver

import (
	"moobi/power"
	"moobi/power/fleet"
	"moobi/power/poller"
)

// powerPoll is the service's BMC power poller, made at first use: it
// reads the power state of the inventory's BMC hosts in the background
// (every PowerPollInterval, poller.DefaultInterval if 0), and learns the
// results of the power actions the service runs; its Gate keeps one call
// at a time on each BMC, reads and actions together.
func (s *Service) powerPoll() *poller.Poller {
	if p := s.poll.Load(); p != nil {
		return p
	}
	s.poll.CompareAndSwap(nil, &poller.Poller{Inventory: s.Store.Current, Interval: s.PowerPollInterval,
		Gate: &power.Gate{}, Log: s.Log.With("component", "power-poller")})
	return s.poll.Load()
}

// observePower records a power action's result in the poller.
func (s *Service) observePower(r fleet.Result) {
	kind := ""
	if !r.OK {
		kind = r.Kind
	}
	s.powerPoll().Observe(r.Host, r.State, kind)
}
