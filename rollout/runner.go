package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"sort"
	"sync"
	"time"

	"moobi/power"
)

// Power power-cycles hosts into a network boot (fleet.Runner with the pxe
// action) and returns each host's error (nil: done).
type Power interface {
	PXE(ctx context.Context, hosts []string) map[string]error
}

// Nodes reports what the appliance last heard of each host's node, by
// host name.
type Nodes interface {
	Observe() map[string]Observation
}

// Catalog is the image catalog as rollouts use it.
type Catalog interface {
	// Versions returns an image's current version and every kept one.
	Versions(image string) (current string, versions []string, err error)
	SetCurrent(image, version string) error
}

// Inventory returns the inventory's hosts and the image each boots
// ("" for a direct netboot).
type Inventory func() (hosts []power.Host, imageOf map[string]string)

// DefaultInterval is how often the runner looks at the nodes.
const DefaultInterval = 2 * time.Second

// DefaultPowerRetries and DefaultPowerRetryDelay: a failed power action
// is tried twice more, 5 s apart, before its host fails.
const (
	DefaultPowerRetries    = 2
	DefaultPowerRetryDelay = 5 * time.Second
)

// Runner runs the rollouts of one appliance: it keeps their state in the
// state file, steps the active ones, and serves the pins the boot config
// consults.
type Runner struct {
	Path      string // the state file (data_dir/state/rollouts.json)
	Power     Power
	Nodes     Nodes
	Catalog   Catalog
	Inventory Inventory
	Now       func() time.Time // time.Now if nil
	Interval  time.Duration    // DefaultInterval if 0
	// PowerRetries is how many more times a host's power action is tried
	// after it failed for any reason but refused credentials, PowerRetryDelay
	// apart (DefaultPowerRetries and DefaultPowerRetryDelay if 0; negative:
	// none). A BMC that misses one call should not cost a host its place.
	PowerRetries    int
	PowerRetryDelay time.Duration
	// BatchDone, if set, is told of every batch finished.
	BatchDone func()
	Log       *slog.Logger

	mu   sync.Mutex
	file File
	// unsaved: the state in memory is ahead of the state file (power
	// results whose save failed); the next step saves it.
	unsaved bool
	wakeC   chan struct{}
	once    sync.Once
}

func (m *Runner) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Runner) wake() chan struct{} {
	m.once.Do(func() { m.wakeC = make(chan struct{}, 1) })
	return m.wakeC
}

// Load reads the state file, before anything is served; rollouts that
// were running resume (see Restarted).
func (m *Runner) Load() error {
	f, err := Load(m.Path)
	if err != nil {
		// Kept for the operator, not overwritten by the next save.
		aside := fmt.Sprintf("%s.bad-%d", m.Path, m.now().Unix())
		if rerr := os.Rename(m.Path, aside); rerr != nil {
			return fmt.Errorf("%w; moving it aside: %v", err, rerr)
		}
		m.mu.Lock()
		m.file = File{Rollouts: map[string]Rollout{}, Pins: map[string]Pin{}}
		m.mu.Unlock()
		return fmt.Errorf("%w; moved to %s, starting without rollouts or pins", err, aside)
	}
	now := m.now()
	for id, r := range f.Rollouts {
		f.Rollouts[id] = Restarted(r, now)
	}
	m.mu.Lock()
	m.file = f
	m.mu.Unlock()
	return nil
}

// Run steps the active rollouts every Interval, and at once after a
// change, until ctx ends.
func (m *Runner) Run(ctx context.Context) error {
	iv := m.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		m.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.wake():
		}
	}
}

func (m *Runner) poke() {
	select {
	case m.wake() <- struct{}{}:
	default:
	}
}

// commit applies change to a copy of the state and saves the copy; the
// runner's state becomes the copy only once it is on disk, so that a
// failed save changes nothing the appliance serves (no pin that a restart
// would drop). The caller holds mu.
func (m *Runner) commit(change func(f *File)) error {
	next := File{Generation: m.file.Generation, Rollouts: maps.Clone(m.file.Rollouts), Pins: maps.Clone(m.file.Pins)}
	if next.Rollouts == nil {
		next.Rollouts = map[string]Rollout{}
	}
	if next.Pins == nil {
		next.Pins = map[string]Pin{}
	}
	change(&next)
	if err := Save(m.Path, &next); err != nil {
		return err
	}
	m.file, m.unsaved = next, false
	return nil
}

// Tick steps every active rollout once: records what the nodes report,
// power-cycles the hosts a batch needs (each pinned to the target version
// first, the pin saved before the BMC is asked) and records the results.
func (m *Runner) Tick(ctx context.Context) {
	m.mu.Lock()
	var ids, current []string
	now := m.now()
	for id, r := range m.file.Rollouts {
		if r.State.Active() {
			ids = append(ids, id)
		} else if CurrentDue(r, now) {
			current = append(current, id)
		}
	}
	m.mu.Unlock()
	sort.Strings(current)
	for _, id := range current {
		// Left pending by a crash or a failure: tried again.
		m.makeCurrent(ctx, m.Log.With("rollout", id), id)
	}
	if len(ids) == 0 {
		return // nothing to look at: the node list is not copied
	}
	sort.Strings(ids)
	obs := m.Nodes.Observe()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		m.step(ctx, id, obs)
	}
}

func (m *Runner) step(ctx context.Context, id string, obs map[string]Observation) {
	log := m.Log.With("rollout", id)
	m.mu.Lock()
	r := m.file.Rollouts[id]
	now := m.now()
	next, act := Step(r, obs, now)
	if reflect.DeepEqual(r, next) && len(act.Power) == 0 && !m.unsaved {
		m.mu.Unlock()
		return
	}
	err := m.commit(func(f *File) {
		for _, h := range act.Power {
			f.Pins[h] = Pin{Image: next.Image, Version: next.Version, Rollout: id, Set: now}
		}
		f.Rollouts[id] = next
	})
	m.mu.Unlock()
	if err != nil {
		// Nothing changed, here or on disk: the next step takes it
		// from where it was, once the pins can be saved.
		log.Error("rollout state not saved: no change and no power action this time", "err", err)
		return
	}
	m.logChange(log, r, next)
	if done := next.Batch - r.Batch; done > 0 && m.BatchDone != nil {
		for range done {
			m.BatchDone()
		}
	}
	if len(act.Power) > 0 {
		log.Info("rollout powering hosts into a network boot", "image", next.Image, "version", next.Version, "hosts", act.Power)
		res := m.pxe(ctx, log, act.Power)
		if ctx.Err() != nil {
			// The appliance is stopping: a call it cut short is no
			// failure of the host, which stays powering and is checked
			// again (and asked again if need be) after the restart.
			for h, err := range res {
				if err != nil {
					delete(res, h)
				}
			}
		}
		m.mu.Lock()
		cur := PowerDone(m.file.Rollouts[id], res, m.now())
		if err := m.commit(func(f *File) { f.Rollouts[id] = cur }); err != nil {
			// Kept here (the hosts were power-cycled: asking again
			// would cycle them twice), and saved by the next step; the
			// pins they boot are on disk already.
			m.file.Rollouts[id], m.unsaved = cur, true
			log.Error("rollout state not saved; saved again at the next step", "err", err)
		}
		m.mu.Unlock()
		for h, err := range res {
			if err != nil {
				log.Warn("rollout power action failed", "host", h, "err", err)
			}
		}
	}
	if act.MakeCurrent {
		m.makeCurrent(ctx, log, id)
	}
}

func (m *Runner) logChange(log *slog.Logger, was, now Rollout) {
	if was.State != now.State {
		log.Info("rollout state changed", "image", now.Image, "version", now.Version, "state", string(now.State), "reason", now.Reason)
	}
	if was.Batch != now.Batch && now.Batch <= len(now.Batches) {
		log.Info("rollout batch done", "batch", was.Batch, "of", len(now.Batches))
	}
}

// Pin returns the pin of a host, if it has one.
func (m *Runner) Pin(host string) (Pin, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.file.Pins[host]
	return p, ok
}

// Pins returns a copy of every pin.
func (m *Runner) Pins() map[string]Pin {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Pin, len(m.file.Pins))
	for h, p := range m.file.Pins {
		out[h] = p
	}
	return out
}

// List returns every rollout, newest first.
func (m *Runner) List() []Rollout {
	m.mu.Lock()
	out := make([]Rollout, 0, len(m.file.Rollouts))
	for _, r := range m.file.Rollouts {
		out = append(out, r.Clone())
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// ErrNotFound marks an unknown rollout ID.
var ErrNotFound = errors.New("no such rollout")

// Get returns one rollout.
func (m *Runner) Get(id string) (Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.file.Rollouts[id]
	if !ok {
		return Rollout{}, fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	}
	return r.Clone(), nil
}

// Start plans a rollout and, unless it is a dry run, stores it running
// (with the pins that hold the image's hosts on what they run) and wakes
// the runner. Errors are *RequestError, *ConflictError or the state
// file's.
func (m *Runner) Start(req Request) (Rollout, error) {
	hosts, imageOf := m.Inventory()
	current, versions, err := m.Catalog.Versions(req.Image)
	if err != nil && req.Image != "" {
		return Rollout{}, &RequestError{fmt.Sprintf("rollout: image %q: %v", req.Image, err)}
	}
	obs := m.Nodes.Observe()
	m.mu.Lock()
	defer m.mu.Unlock()
	env := Env{Hosts: hosts, ImageOf: imageOf, Current: current, Versions: versions, Observed: obs, Pins: m.file.Pins}
	for _, r := range m.file.Rollouts {
		env.Rollouts = append(env.Rollouts, r)
	}
	now := m.now()
	id := NewID(req.Image, now, func(id string) bool { _, ok := m.file.Rollouts[id]; return ok })
	r, holds, err := Plan(req, env, id, now)
	if err != nil || req.DryRun {
		return r, err
	}
	r.State, r.Started, r.Updated = Running, now, now
	if err := m.commit(func(f *File) {
		f.Rollouts[id] = r
		for k, v := range holds {
			f.Pins[k] = v
		}
	}); err != nil {
		return Rollout{}, err
	}
	m.Log.Info("rollout started", "rollout", id, "image", r.Image, "version", r.Version, "hosts", len(r.Hosts()), "batches", len(r.Batches), "held", len(holds))
	m.poke()
	return r.Clone(), nil
}

// Control applies a pause, resume or abort (Pause, Resume, Abort) to
// rollout id and saves it. Errors wrap ErrNotFound or ErrState, or are
// the state file's.
func (m *Runner) Control(id string, f func(Rollout, time.Time) (Rollout, error)) (Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.file.Rollouts[id]
	if !ok {
		return Rollout{}, fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	}
	next, err := f(r, m.now())
	if err != nil {
		return r.Clone(), err
	}
	if err := m.commit(func(f *File) { f.Rollouts[id] = next }); err != nil {
		return r.Clone(), err
	}
	m.Log.Info("rollout state changed", "rollout", id, "state", string(next.State))
	m.poke()
	return next.Clone(), nil
}

// pxe runs the power action on hosts, trying the ones that failed again
// (except for refused credentials, which another try cannot mend) up to
// PowerRetries more times; it returns each host's last result.
func (m *Runner) pxe(ctx context.Context, log *slog.Logger, hosts []string) map[string]error {
	retries, delay := m.PowerRetries, m.PowerRetryDelay
	if retries == 0 {
		retries = DefaultPowerRetries
	}
	if delay == 0 {
		delay = DefaultPowerRetryDelay
	}
	res := m.Power.PXE(ctx, hosts)
	for try := 1; try <= retries; try++ {
		again := RetryHosts(res)
		if len(again) == 0 {
			break
		}
		log.Warn("rollout power action failed; trying again", "hosts", again, "try", try, "of", retries, "err", res[again[0]])
		select {
		case <-ctx.Done():
			return res
		case <-time.After(delay):
		}
		for h, err := range m.Power.PXE(ctx, again) {
			res[h] = err
		}
	}
	return res
}

// RetryHosts returns, sorted, the hosts whose power action failed for a
// reason another try may mend: any but refused credentials.
func RetryHosts(res map[string]error) []string {
	var hosts []string
	for h, err := range res {
		if err != nil && !errors.Is(err, power.ErrAuth) {
			hosts = append(hosts, h)
		}
	}
	sort.Strings(hosts)
	return hosts
}
