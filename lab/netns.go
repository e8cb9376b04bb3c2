package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// siteVeth is the site end of the veth pair (in the site namespace); its
// peer in the appliance namespace is a port of br0.
const (
	siteVeth    = "veth0"
	siteVethApp = "veth-site"
)

// ip runs `ip args...`, logging the command and returning its output in the
// error on failure.
func (l *Lab) ip(ctx context.Context, args ...string) error {
	return runLogged(ctx, l.log, "ip", args...)
}

func runLogged(ctx context.Context, log io.Writer, name string, args ...string) error {
	if log != nil {
		fmt.Fprintf(log, "lab: + %s %s\n", name, strings.Join(args, " "))
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// addNetns creates namespace ns, records it for Close and brings lo up.
func (l *Lab) addNetns(ctx context.Context, ns string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("lab: closed")
	}
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	if err := l.ip(ctx, "netns", "add", ns); err != nil {
		return err
	}
	return l.ip(ctx, "-n", ns, "link", "set", "lo", "up")
}

func (l *Lab) setupNetwork(ctx context.Context) error {
	if err := l.addNetns(ctx, l.appNS); err != nil {
		return err
	}
	if err := l.addNetns(ctx, l.siteNS); err != nil {
		return err
	}
	app, site := []string{"-n", l.appNS}, []string{"-n", l.siteNS}
	steps := [][]string{
		append(app, "link", "add", BridgeName, "type", "bridge",
			"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"),
		append(app, "addr", "add", ApplianceAddr+"/24", "dev", BridgeName),
		append(app, "addr", "add", ApplianceAddr6+"/64", "dev", BridgeName, "nodad"),
		append(app, "link", "set", BridgeName, "up"),
		append(app, "link", "add", siteVethApp, "type", "veth", "peer", "name", siteVeth, "netns", l.siteNS),
		append(app, "link", "set", siteVethApp, "master", BridgeName, "up"),
		append(site, "addr", "add", SiteAddr+"/24", "dev", siteVeth),
		append(site, "addr", "add", SiteAddr6+"/64", "dev", siteVeth, "nodad"),
		append(site, "link", "set", siteVeth, "up"),
	}
	for _, s := range steps {
		if err := l.ip(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

var hostNameRE = regexp.MustCompile(`^[a-z0-9]{1,12}$`)

// AddHost creates an extra namespace NSPrefix+ID()+"-"+name whose interface
// eth0 (up, no address) is plugged into br0, and returns the namespace
// name. It is a bare "machine" on the lab LAN for running clients such as
// `busybox udhcpc` (use NetnsCommand). Close deletes it. name must match
// [a-z0-9]{1,12} and not be "app" or "site".
func (l *Lab) AddHost(ctx context.Context, name string) (string, error) {
	if !hostNameRE.MatchString(name) || name == "app" || name == "site" {
		return "", fmt.Errorf("lab: bad host name %q", name)
	}
	l.mu.Lock()
	l.hosts++
	port := fmt.Sprintf("host%d", l.hosts)
	l.mu.Unlock()
	ns := NSPrefix + l.id + "-" + name
	if err := l.addNetns(ctx, ns); err != nil {
		return "", err
	}
	steps := [][]string{
		{"-n", l.appNS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", l.appNS, "link", "set", port, "master", BridgeName, "up"},
		{"-n", ns, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := l.ip(ctx, s...); err != nil {
			return "", err
		}
	}
	return ns, nil
}

// addTap creates a tap device plugged into br0 and returns its name.
func (l *Lab) addTap(ctx context.Context) (string, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return "", errors.New("lab: closed")
	}
	tap := fmt.Sprintf("tap%d", len(l.taps))
	l.taps = append(l.taps, tap)
	l.mu.Unlock()
	if err := l.ip(ctx, "-n", l.appNS, "tuntap", "add", "dev", tap, "mode", "tap"); err != nil {
		return "", err
	}
	if err := l.ip(ctx, "-n", l.appNS, "link", "set", tap, "master", BridgeName, "up"); err != nil {
		return "", err
	}
	return tap, nil
}

// ListNetns returns the names of all network namespaces known to `ip netns`.
func ListNetns(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// KillNetnsProcesses SIGKILLs every process inside namespace ns, and every
// `ip netns exec ns ...` that has not switched to it yet, repeating until
// none is left (children of killed processes included) or ctx ends.
func KillNetnsProcesses(ctx context.Context, ns string) error {
	t := time.NewTicker(pollInterval / 2)
	defer t.Stop()
	for {
		pids := NetnsPids(ns)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: processes %v in namespace %s survive: %w", pids, ns, ctx.Err())
		case <-t.C:
		}
	}
}

// NetnsPids lists the live (non-zombie) processes in namespace ns or about
// to enter it via `ip netns exec ns`.
func NetnsPids(ns string) []int {
	var nsSt syscall.Stat_t
	haveNS := syscall.Stat(filepath.Join("/run/netns", ns), &nsSt) == nil
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if stat, err := os.ReadFile(filepath.Join(dir, "stat")); err != nil || isZombie(stat) {
			continue
		}
		var st syscall.Stat_t
		if haveNS && syscall.Stat(filepath.Join(dir, "ns", "net"), &st) == nil &&
			st.Ino == nsSt.Ino && st.Dev == nsSt.Dev {
			pids = append(pids, pid)
			continue
		}
		if cl, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil &&
			bytes.Contains(cl, []byte("\x00netns\x00exec\x00"+ns+"\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isZombie reports whether a /proc/<pid>/stat line has state Z or X.
func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// DeleteNetns deletes namespace ns; a missing namespace is not an error.
func DeleteNetns(ctx context.Context, ns string) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("No such file")) {
		return fmt.Errorf("ip netns del %s: %w: %s", ns, err, bytes.TrimSpace(out))
	}
	return nil
}

// CleanupStale deletes namespaces whose names start with NSPrefix and that
// were left behind by crashed runs, killing any process still inside them.
// Namespaces created by a lab whose process is still alive (the pid is part
// of the name) are kept, so it is safe to call while other labs run. It
// returns the names it deleted. It is never called implicitly.
func CleanupStale(ctx context.Context) ([]string, error) {
	return RemoveStaleNetns(ctx, func(ns string) bool {
		return strings.HasPrefix(ns, NSPrefix) && !ownerAlive(ns)
	})
}

// RemoveStaleNetns deletes the namespaces for which stale returns true,
// killing any process still inside them first, and returns the names it
// deleted. Others' namespaces are theirs to name: stale decides, typically
// from a process id in the name (see ProcessAlive).
func RemoveStaleNetns(ctx context.Context, stale func(ns string) bool) ([]string, error) {
	names, err := ListNetns(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, ns := range names {
		if !stale(ns) {
			continue
		}
		if err := KillNetnsProcesses(ctx, ns); err != nil {
			errs = append(errs, err)
		}
		if err := DeleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ns)
	}
	return removed, errors.Join(errs...)
}

// ownerAlive reports whether ns looks like "moobi-<id>-<pid>-<role>" and
// process <pid> exists.
func ownerAlive(ns string) bool {
	f := strings.Split(strings.TrimPrefix(ns, NSPrefix), "-")
	if len(f) < 3 {
		return false
	}
	pid, err := strconv.Atoi(f[1])
	return err == nil && pid > 0 && ProcessAlive(pid)
}

// ProcessAlive reports whether process pid exists (also when it belongs to
// another user).
func ProcessAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
