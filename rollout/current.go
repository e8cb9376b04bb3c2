package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// CurrentRetry is how long the runner waits after a failed try before it
// tries again to make a succeeded rollout's version current.
const CurrentRetry = 30 * time.Second

// CurrentDue tells whether the runner should try, at now, to make r's
// version current: r succeeded with MakeCurrent, that is not done yet, and
// the last try (if any) is CurrentRetry old. Pure.
func CurrentDue(r Rollout, now time.Time) bool {
	return r.CurrentPending && (r.CurrentTried.IsZero() || !now.Before(r.CurrentTried.Add(CurrentRetry)))
}

// MadeCurrent records a try, at now, at making r's version current: a nil
// err is done; a version the catalog no longer keeps (ErrNoVersion) ends
// the intent, since no later try can succeed; any other error leaves it
// pending for the next try. The reason says what became of it. Pure: r is
// not modified.
func MadeCurrent(r Rollout, err error, now time.Time) Rollout {
	r = r.Clone()
	r.CurrentTried, r.Updated = now, now
	switch {
	case err == nil:
		r.CurrentPending, r.CurrentError = false, ""
		r.Reason = r.Version + " made current"
	case errors.Is(err, ErrNoVersion):
		r.CurrentPending, r.CurrentError = false, err.Error()
		r.Reason = fmt.Sprintf("succeeded, but %s was not made current: %v", r.Version, err)
	default:
		r.CurrentError = err.Error()
		r.Reason = fmt.Sprintf("succeeded, but making %s current failed (tried again every %v): %v", r.Version, CurrentRetry, err)
	}
	return r
}

// makeCurrent makes the version of succeeded rollout id current, if that
// is still pending: first it pins the image's hosts the rollout did not
// cover to the old current version (on disk before the switch), then it
// switches current, then it drops the pins to the new version, which now
// say what current says, and clears the intent. Each part may be done
// again after a crash or a failure: a version already current is not
// switched again.
func (m *Runner) makeCurrent(ctx context.Context, log *slog.Logger, id string) {
	m.mu.Lock()
	r, ok := m.file.Rollouts[id]
	m.mu.Unlock()
	if !ok || !r.CurrentPending || ctx.Err() != nil {
		return
	}
	log = log.With("image", r.Image, "version", r.Version)
	old, kept, err := m.Catalog.Versions(r.Image)
	switch {
	case err != nil:
		err = fmt.Errorf("image %s: %w", r.Image, err)
	case !slices.Contains(kept, r.Version):
		err = fmt.Errorf("image %s: version %s is no longer kept: %w", r.Image, r.Version, ErrNoVersion)
	case old != r.Version:
		err = m.holdOthers(log, r, old)
		if err == nil {
			err = m.Catalog.SetCurrent(r.Image, r.Version)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.file.Rollouts[id]
	if !ok {
		return
	}
	next := MadeCurrent(cur, err, m.now())
	serr := m.commit(func(f *File) {
		f.Rollouts[id] = next
		if err != nil {
			return
		}
		for h, p := range f.Pins {
			if p.Image == r.Image && p.Version == r.Version {
				delete(f.Pins, h)
			}
		}
	})
	switch {
	case err != nil:
		log.Error("rollout: making the version current failed", "err", err, "pending", next.CurrentPending)
	case serr == nil:
		log.Info("rollout: version made current")
	}
	if serr != nil {
		// The intent stays pending (on disk and here): the next step
		// does what is left.
		log.Error("rollout state not saved; making the version current is tried again", "err", serr)
	}
}

// holdOthers pins the hosts of r's image that r did not cover, and that
// have no pin, to old (the image's current version), and saves them.
func (m *Runner) holdOthers(log *slog.Logger, r Rollout, old string) error {
	hosts, imageOf := m.Inventory()
	m.mu.Lock()
	defer m.mu.Unlock()
	holds := CurrentHolds(r, old, hosts, imageOf, m.file.Pins, m.now())
	if len(holds) == 0 {
		return nil
	}
	if err := m.commit(func(f *File) {
		for h, p := range holds {
			f.Pins[h] = p
		}
	}); err != nil {
		return fmt.Errorf("holding the other hosts on %s: %w", old, err)
	}
	log.Info("rollout: hosts outside it held on the old current version", "old", old, "hosts", len(holds))
	return nil
}
