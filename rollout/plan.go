package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"moobi/power"
)

// Request is what an operator asks for: POST /v1/rollouts.
type Request struct {
	Image string `json:"image"`
	// Version is the target version ("" or "current": the image's current
	// version).
	Version string   `json:"version,omitempty"`
	Targets []string `json:"targets"`
	Options
	// DryRun: return the plan, change nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// Pin holds a host on one version of an image: the boot config serves it
// that version instead of the image's current one.
type Pin struct {
	Image   string    `json:"image"`
	Version string    `json:"version"`
	Rollout string    `json:"rollout,omitempty"` // the rollout that set it
	Set     time.Time `json:"set"`
}

// Env is what Plan knows of the appliance.
type Env struct {
	// Hosts are the inventory's hosts (power.Match's view).
	Hosts []power.Host
	// ImageOf maps each host to the image its profile boots ("" for a
	// direct netboot).
	ImageOf map[string]string
	// Current is the image's current version; Versions every kept one.
	Current  string
	Versions []string
	Observed map[string]Observation
	Pins     map[string]Pin
	// Rollouts are the rollouts stored, to refuse overlapping ones.
	Rollouts []Rollout
}

// A RequestError is a request Plan refuses: bad image, version, targets
// or options (HTTP 400).
type RequestError struct{ msg string }

func (e *RequestError) Error() string { return e.msg }

// A ConflictError is a request whose hosts another active rollout holds
// (HTTP 409).
type ConflictError struct{ msg string }

func (e *ConflictError) Error() string { return e.msg }

// ErrNoVersion marks an image without the version asked for.
var ErrNoVersion = errors.New("no such version")

// Plan turns a request into a rollout with the given id, its hosts in
// batches of BatchSize in name order, each with the version it boots
// now; and returns the pins that hold the image's other hosts (and the
// rollout's hosts until their batch) on the version they run, where they
// would boot another one at their next boot. Pure.
func Plan(req Request, env Env, id string, now time.Time) (Rollout, map[string]Pin, error) {
	var problems []string
	if req.Image == "" {
		problems = append(problems, "no image named")
	}
	if req.BatchSize == 0 {
		req.BatchSize = DefaultBatchSize
	}
	if req.BatchTimeout == 0 {
		req.BatchTimeout = Duration(DefaultBatchTimeout)
	}
	if req.BatchSize < 0 {
		problems = append(problems, fmt.Sprintf("batch_size %d: want 1 or more", req.BatchSize))
	}
	if req.MaxFailures < 0 {
		problems = append(problems, fmt.Sprintf("max_failures %d: want 0 or more", req.MaxFailures))
	}
	if req.BatchTimeout < Duration(time.Minute) {
		problems = append(problems, fmt.Sprintf("batch_timeout %v: want at least 1m (a boot takes that long)", time.Duration(req.BatchTimeout)))
	}
	version := req.Version
	if version == "" || version == "current" {
		version = env.Current
	}
	if req.Image != "" {
		switch {
		case len(env.Versions) == 0:
			problems = append(problems, fmt.Sprintf("image %q: not in the catalog (moobi image list)", req.Image))
		case version == "":
			problems = append(problems, fmt.Sprintf("image %q has no current version: name one with --version", req.Image))
		case !slices.Contains(env.Versions, version):
			problems = append(problems, fmt.Sprintf("image %q has no version %q (kept: %s)", req.Image, version, strings.Join(env.Versions, ", ")))
		}
	}
	// Globs, profiles and all take the hosts of the image; a host named
	// outright must boot it.
	var mine []power.Host
	for _, h := range env.Hosts {
		img, known := env.ImageOf[h.Name]
		if img == req.Image {
			mine = append(mine, h)
			continue
		}
		if !known || !slices.Contains(req.Targets, h.Name) {
			continue
		}
		if img == "" {
			problems = append(problems, fmt.Sprintf("host %s boots a direct netboot profile, not image %q", h.Name, req.Image))
		} else {
			problems = append(problems, fmt.Sprintf("host %s boots image %q, not %q", h.Name, img, req.Image))
		}
	}
	var names []string
	if len(problems) == 0 {
		var err error
		if names, err = power.Match(mine, req.Targets); err != nil {
			problems = append(problems, strings.Replace(err.Error(), "names no host with a bmc", "names no host of image "+strconv.Quote(req.Image)+" with a bmc", 1))
		}
	}
	if len(problems) > 0 {
		return Rollout{}, nil, &RequestError{"rollout: " + strings.Join(problems, "; ")}
	}
	in := map[string]bool{}
	for _, n := range names {
		in[n] = true
	}
	var clash []string
	for _, o := range env.Rollouts {
		if !o.State.Active() {
			continue
		}
		for _, n := range o.Hosts() {
			if in[n] {
				clash = append(clash, fmt.Sprintf("%s (rollout %s, %s)", n, o.ID, o.State))
			}
		}
	}
	if len(clash) > 0 {
		return Rollout{}, nil, &ConflictError{"rollout: hosts already in an active rollout (abort it or wait for it): " + strings.Join(clash, ", ")}
	}

	r := Rollout{ID: id, Image: req.Image, Version: version, Targets: req.Targets, State: Planned,
		Options: req.Options, Created: now}
	for i, n := range names {
		if i%req.BatchSize == 0 {
			r.Batches = append(r.Batches, Batch{Index: len(r.Batches)})
		}
		o := env.Observed[n]
		h := Host{Name: n, State: Waiting, FromVersion: fromVersion(n, req.Image, env), NodeState: o.State, NodeVersion: o.Version}
		if runs(o, req.Image, version, req.AcceptDegraded) {
			h.Reason = "already running " + version
		}
		b := &r.Batches[len(r.Batches)-1]
		b.Hosts = append(b.Hosts, h)
	}
	r.recount()
	return r, holds(req.Image, id, env, now), nil
}

// fromVersion is the version a host runs (as its node reported), else the
// one it would boot.
func fromVersion(host, image string, env Env) string {
	if o := env.Observed[host]; o.Image == image && o.Version != "" {
		return o.Version
	}
	return bootsNext(host, image, env)
}

// bootsNext is the version a host of image boots at its next boot.
func bootsNext(host, image string, env Env) string {
	if p, ok := env.Pins[host]; ok && p.Image == image && slices.Contains(env.Versions, p.Version) {
		return p.Version
	}
	return env.Current
}

// holds pins every host of image that has no pin yet and whose node runs
// a kept version other than the current one to the version it runs:
// publishing a version as current moves no host until a rollout does.
// Hosts an active rollout holds are left to it.
func holds(image, id string, env Env, now time.Time) map[string]Pin {
	busy := map[string]bool{}
	for _, r := range env.Rollouts {
		if r.State.Active() {
			for _, h := range r.Hosts() {
				busy[h] = true
			}
		}
	}
	out := map[string]Pin{}
	for _, h := range env.Hosts {
		if _, pinned := env.Pins[h.Name]; pinned || busy[h.Name] || env.ImageOf[h.Name] != image {
			continue
		}
		o := env.Observed[h.Name]
		if o.Image != image || o.Version == "" || !slices.Contains(env.Versions, o.Version) {
			continue
		}
		if o.Version != bootsNext(h.Name, image, env) {
			out[h.Name] = Pin{Image: image, Version: o.Version, Rollout: id, Set: now}
		}
	}
	return out
}

// CurrentHolds returns the pins that keep the hosts of r's image that r
// did not cover on old, the image's current version, before r's version
// is made current: each such host without a pin. Pure.
func CurrentHolds(r Rollout, old string, hosts []power.Host, imageOf map[string]string, pins map[string]Pin, now time.Time) map[string]Pin {
	out := map[string]Pin{}
	if old == "" || old == r.Version {
		return out
	}
	mine := map[string]bool{}
	for _, h := range r.Hosts() {
		mine[h] = true
	}
	for _, h := range hosts {
		if _, pinned := pins[h.Name]; pinned || mine[h.Name] || imageOf[h.Name] != r.Image {
			continue
		}
		out[h.Name] = Pin{Image: r.Image, Version: old, Rollout: r.ID, Set: now}
	}
	return out
}
