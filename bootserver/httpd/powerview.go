package httpd

import (
	"encoding/json"

	"moobi/nodes"
	"moobi/power"
	"moobi/rollout"
)

// powerReadings returns the hosts' power readings and their generation
// (none without PowerStates).
func (s *Server) powerReadings() (map[string]power.Reading, uint64) {
	if s.PowerStates == nil {
		return nil, 0
	}
	return s.PowerStates()
}

// withPower sets the power reading of every node of list whose host has
// a BMC, from readings.
func withPower(list []nodes.Node, readings map[string]power.Reading) []nodes.Node {
	if len(readings) == 0 {
		return list
	}
	for i := range list {
		if r, ok := readings[list[i].Name]; ok && list[i].Name != "" {
			list[i].Power = &r
		}
	}
	return list
}

// rolloutsJSON is GET /v1/rollouts's body, for the live stream (nil
// without Rollouts).
func (s *Server) rolloutsJSON() []byte {
	if s.Rollouts == nil {
		return nil
	}
	list := s.Rollouts.List()
	if list == nil {
		list = []rollout.Rollout{}
	}
	b, err := json.Marshal(RolloutList{Rollouts: list})
	if err != nil {
		return nil
	}
	return b
}
