package rollout

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// HostPin is one host's pin, as GET /v1/pins lists it.
type HostPin struct {
	Host string `json:"host"`
	Pin
}

// UnpinRequest is what POST /v1/pins/unpin asks for: the pins of Hosts
// removed, or, with All, every pin.
type UnpinRequest struct {
	Hosts []string `json:"hosts,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// PinList returns pins in host name order. Pure.
func PinList(pins map[string]Pin) []HostPin {
	out := make([]HostPin, 0, len(pins))
	for h, p := range pins {
		out = append(out, HostPin{Host: h, Pin: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// Unpin returns, in name order, the hosts whose pins req removes. It
// refuses (and removes nothing) when req names no host, names a host
// without a pin (*RequestError), or would unpin a host of a running or
// paused rollout, which pins its hosts as it moves them (*ConflictError).
// Pure.
func Unpin(req UnpinRequest, pins map[string]Pin, rollouts map[string]Rollout) ([]string, error) {
	var hosts []string
	switch {
	case req.All && len(req.Hosts) > 0:
		return nil, &RequestError{"unpin: name hosts or all, not both"}
	case req.All:
		for h := range pins {
			hosts = append(hosts, h)
		}
	case len(req.Hosts) == 0:
		return nil, &RequestError{"unpin: name the hosts to unpin, or all"}
	default:
		var missing []string
		for _, h := range req.Hosts {
			if _, ok := pins[h]; !ok {
				missing = append(missing, h)
			} else if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
		if len(missing) > 0 {
			return nil, &RequestError{fmt.Sprintf("unpin: no pin for %s (moobi rollout pins lists them); nothing unpinned", strings.Join(missing, ", "))}
		}
	}
	sort.Strings(hosts)
	held := map[string]string{}
	for _, r := range rollouts {
		if r.State.Active() {
			for _, h := range r.Hosts() {
				held[h] = fmt.Sprintf("%s (rollout %s, %s)", h, r.ID, r.State)
			}
		}
	}
	var busy []string
	for _, h := range hosts {
		if why, ok := held[h]; ok {
			busy = append(busy, why)
		}
	}
	if len(busy) > 0 {
		return nil, &ConflictError{fmt.Sprintf("unpin: %s: a running or paused rollout moves these hosts; abort it or let it end first; nothing unpinned", strings.Join(busy, ", "))}
	}
	return hosts, nil
}

// Unpin removes the pins req names (see the function Unpin) and saves the
// state file; it returns the pins removed. Errors are *RequestError,
// *ConflictError or the state file's (then nothing is removed).
func (m *Runner) Unpin(req UnpinRequest) ([]HostPin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hosts, err := Unpin(req, m.file.Pins, m.file.Rollouts)
	if err != nil || len(hosts) == 0 {
		return []HostPin{}, err
	}
	removed := make([]HostPin, 0, len(hosts))
	for _, h := range hosts {
		removed = append(removed, HostPin{Host: h, Pin: m.file.Pins[h]})
	}
	if err := m.commit(func(f *File) {
		for _, h := range hosts {
			delete(f.Pins, h)
		}
	}); err != nil {
		return []HostPin{}, fmt.Errorf("unpin: %w; nothing unpinned", err)
	}
	for _, p := range removed {
		m.Log.Info("rollout: host unpinned", "host", p.Host, "image", p.Image, "version", p.Version, "rollout", p.Rollout)
	}
	return removed, nil
}

// PinList returns every pin, in host name order.
func (m *Runner) PinList() []HostPin {
	m.mu.Lock()
	defer m.mu.Unlock()
	return PinList(m.file.Pins)
}
