package fetch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"moobi/nodeapi"
)

// SystemdTimeout is how long the seeder waits for the image's systemd to
// reach its default target before it reports the node failed;
// OfflineTimeout how long systemctl may say "offline" (systemd not up as
// PID 1 yet) after the switch.
const (
	SystemdTimeout = 15 * time.Minute
	OfflineTimeout = 2 * time.Minute
)

// OpenProc opens /proc for WatchSystemd, before the pivot: afterwards the
// seeder, left in the initramfs's emptied root, no longer sees it.
func OpenProc() (int, error) {
	return unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// WatchSystemd waits until the node has pivoted into the image (PID 1's
// root is no longer the seeder's; proc is OpenProc's descriptor), moves the
// seeder into the image's root, then asks the image's systemd every two
// seconds whether it is up, and reports running, degraded (with the failed
// units) or failed to the appliance.
func WatchSystemd(ctx context.Context, spec SeedSpec, proc int, log *slog.Logger) {
	mac, err := net.ParseMAC(spec.MAC)
	if err != nil {
		log.Warn("cannot report systemd's state: no MAC in the seed spec", "err", err)
		return
	}
	o := Options{Server: spec.Server, MAC: mac, BootToken: spec.BootToken, Log: log}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	deadline := time.Now().Add(SystemdTimeout)
	last := ""
	inImage := false
	var entered time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !inImage {
			if !pivoted(proc) {
				continue
			}
			if err := enterRoot(proc); err != nil {
				log.Warn("cannot enter the image's root to ask systemd", "err", err)
				reportUntil(ctx, o, nodeapi.Event{State: nodeapi.StateRunning, Image: spec.Image, Version: spec.Version,
					Message: "switched to the image's init, seeding (systemd's state unknown: " + err.Error() + ")"})
				return
			}
			inImage, entered = true, time.Now()
		}
		{
			state, _ := systemctl(ctx, "is-system-running")
			var failed []string
			if state == "degraded" {
				out, _ := systemctl(ctx, "list-units", "--state=failed", "--plain", "--no-legend")
				failed = parseFailedUnits(out)
			}
			if state != last {
				log.Info("systemd", "state", state)
				last = state
			}
			if state == "offline" && time.Since(entered) > OfflineTimeout {
				reportUntil(ctx, o, nodeapi.Event{State: nodeapi.StateFailed, Image: spec.Image, Version: spec.Version,
					Reason: "the image's systemctl says systemd is offline " + OfflineTimeout.String() + " after the switch to its init"})
				return
			}
			if e, done := systemdEvent(state, failed, spec.Image, spec.Version); done {
				reportUntil(ctx, o, e)
				return
			}
		}
		if time.Now().After(deadline) {
			reportUntil(ctx, o, nodeapi.Event{State: nodeapi.StateFailed, Image: spec.Image, Version: spec.Version,
				Reason: "systemd did not reach its default target in " + SystemdTimeout.String() + " (last said: " + last + ")"})
			return
		}
	}
}

// reportUntil posts e, retrying for a minute while the appliance cannot
// be reached (the image's network may be restarting).
func reportUntil(ctx context.Context, o Options, e nodeapi.Event) {
	o.defaults()
	for i := 0; i < 30; i++ {
		err := report(ctx, o, e)
		if err == nil {
			return
		}
		o.Log.Warn("cannot report event yet", "state", e.State, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// pivoted reports whether PID 1 runs in another root than this process
// (the node switched root into the image).
func pivoted(proc int) bool {
	var a, b unix.Stat_t
	if unix.Fstatat(proc, "1/root", &a, 0) != nil || unix.Stat("/", &b) != nil {
		return false
	}
	return a.Dev != b.Dev || a.Ino != b.Ino
}

// enterRoot moves this process into PID 1's root (the image's).
func enterRoot(proc int) error {
	fd, err := unix.Openat(proc, "1/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open PID 1's root: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fchdir(fd); err != nil {
		return fmt.Errorf("enter PID 1's root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into PID 1's root: %w", err)
	}
	return unix.Chdir("/")
}

// systemctl runs the image's systemctl and returns its trimmed standard
// output.
func systemctl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/systemctl", args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER="}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	return string(bytes.TrimSpace(out.Bytes())), err
}
