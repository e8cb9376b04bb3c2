package power

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Host is what target matching knows of a host in hosts.yaml.
type Host struct {
	Name    string
	Profile string
	HasBMC  bool
}

// A TargetError is Match's error: targets the request named that name no
// usable host. The request is at fault, not the service.
type TargetError struct{ msg string }

func (e *TargetError) Error() string { return e.msg }

// Match returns the names of the hosts the targets name, sorted and each
// once. A target is a host name, a glob over host names (`rack1-*`, with
// path.Match's syntax), `profile:NAME` (every host booting profile NAME) or
// `all`. Globs, profiles and `all` take only the hosts that have a BMC; a
// host named outright without one, a target that names no host with a BMC
// and a malformed glob are errors, all of them reported at once.
func Match(hosts []Host, targets []string) ([]string, error) {
	if len(targets) == 0 {
		return nil, &TargetError{"no targets: name hosts, globs such as rack1-*, profile:NAME or all"}
	}
	byName := make(map[string]Host, len(hosts))
	for _, h := range hosts {
		byName[h.Name] = h
	}
	picked := map[string]bool{}
	var problems []string
	for _, t := range targets {
		var match func(Host) bool
		switch {
		case t == "all":
			match = func(Host) bool { return true }
		case strings.HasPrefix(t, "profile:"):
			p := strings.TrimPrefix(t, "profile:")
			match = func(h Host) bool { return h.Profile == p }
		case strings.ContainsAny(t, "*?["):
			if _, err := path.Match(t, ""); err != nil {
				problems = append(problems, fmt.Sprintf("target %q: malformed glob", t))
				continue
			}
			match = func(h Host) bool { ok, _ := path.Match(t, h.Name); return ok }
		default:
			h, ok := byName[t]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("target %q: no such host in hosts.yaml", t))
			case !h.HasBMC:
				problems = append(problems, fmt.Sprintf("target %q: the host has no bmc in hosts.yaml", t))
			default:
				picked[t] = true
			}
			continue
		}
		n := 0
		for _, h := range hosts {
			if h.HasBMC && match(h) {
				picked[h.Name] = true
				n++
			}
		}
		if n == 0 {
			problems = append(problems, fmt.Sprintf("target %q: names no host with a bmc", t))
		}
	}
	if len(problems) > 0 {
		return nil, &TargetError{strings.Join(problems, "; ")}
	}
	out := make([]string, 0, len(picked))
	for name := range picked {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}
