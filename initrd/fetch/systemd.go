package fetch

import (
	"fmt"
	"strings"

	"moobi/nodeapi"
)

// systemdEvent turns what `systemctl is-system-running` printed (and the
// failed units, for degraded) into the event the node reports; done is false
// while systemd is still starting.
func systemdEvent(state string, failed []string, image, version string) (e nodeapi.Event, done bool) {
	e = nodeapi.Event{Image: image, Version: version}
	switch strings.TrimSpace(state) {
	case "initializing", "starting", "", "offline":
		// offline: right after the pivot, before systemd made
		// /run/systemd/system (WatchSystemd bounds how long).
		return e, false
	case "running":
		e.State, e.Message = nodeapi.StateRunning, "systemd reached its default target; seeding"
	case "degraded":
		e.State = nodeapi.StateDegraded
		e.Message = "systemd reached its default target with failed units; seeding"
		e.Reason = "failed units: " + strings.Join(failed, ", ")
		if len(failed) == 0 {
			e.Reason = "systemd says degraded but lists no failed unit"
		}
		if len(e.Reason) > 1024 {
			e.Reason = e.Reason[:1020] + " ..."
		}
	default: // maintenance, stopping, offline, unknown
		e.State, e.Reason = nodeapi.StateFailed, fmt.Sprintf("systemd is %s, not running", strings.TrimSpace(state))
	}
	return e, true
}

// parseFailedUnits reads `systemctl list-units --state=failed --plain
// --no-legend` output: the first field of each line.
func parseFailedUnits(out string) []string {
	var units []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(strings.TrimLeft(line, "● *")); len(f) > 0 {
			units = append(units, f[0])
		}
	}
	return units
}
