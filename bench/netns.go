package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"moobi/lab"
)

// The bench network: two namespaces joined by one veth pair. Nothing is
// configured in the host's root namespace.
const (
	nsPrefix = "moobi-bench-"
	srvIf    = "moobi-bench-s" // in the server namespace
	cliIf    = "moobi-bench-c" // in the client namespace
	srvAddr  = "10.98.0.1"
	cliAddr  = "10.98.0.2"
	netCIDR  = "10.98.0.0"
)

type network struct {
	srv, cli string
	created  []string
}

// newNetwork creates moobi-bench-PID-srv and moobi-bench-PID-cli. On error
// what was created is deleted.
func newNetwork(ctx context.Context) (_ *network, err error) {
	pid := os.Getpid()
	n := &network{srv: fmt.Sprintf("%s%d-srv", nsPrefix, pid), cli: fmt.Sprintf("%s%d-cli", nsPrefix, pid)}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	for _, ns := range []string{n.srv, n.cli} {
		n.created = append(n.created, ns)
		if err := ipCmd(ctx, "netns", "add", ns); err != nil {
			return nil, err
		}
		if err := ipCmd(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	steps := [][]string{
		{"-n", n.srv, "link", "add", srvIf, "type", "veth", "peer", "name", cliIf, "netns", n.cli},
		{"-n", n.srv, "addr", "add", srvAddr + "/24", "dev", srvIf},
		{"-n", n.cli, "addr", "add", cliAddr + "/24", "dev", cliIf},
		{"-n", n.srv, "link", "set", srvIf, "up"},
		{"-n", n.cli, "link", "set", cliIf, "up"},
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Close kills every process left in the namespaces and deletes them. It
// does not depend on the run's context, which may be cancelled already.
func (n *network) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for i := len(n.created) - 1; i >= 0; i-- {
		ns := n.created[i]
		if err := lab.KillNetnsProcesses(ctx, ns); err != nil {
			errs = append(errs, err)
		}
		if err := lab.DeleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	n.created = nil
	return errors.Join(errs...)
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, mustLook("ip"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// cleanupStale deletes moobi-bench-PID-* namespaces (and cgroups) of bench
// runs whose process is gone (a run killed with SIGKILL cannot clean up after itself).
func cleanupStale(ctx context.Context) {
	cleanupStaleCaps()
	removed, err := lab.RemoveStaleNetns(ctx, leftBehind)
	for _, ns := range removed {
		fmt.Fprintf(os.Stderr, "bench: deleted namespace %s left by an earlier run\n", ns)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: namespaces left by an earlier run: %v\n", err)
	}
}

// leftBehind reports whether name (a namespace or cgroup) is one a bench
// run made, moobi-bench-PID-…, and that run's process is gone.
func leftBehind(name string) bool {
	rest, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return false
	}
	pidText, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	return err == nil && pid > 0 && !lab.ProcessAlive(pid)
}

// proc is a server or client process started in a namespace (a
// lab.Process: its own process group, killed if bench dies).
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // valid once done is closed
}

// startIn runs `ip netns exec ns name args...` with its output in logPath.
func startIn(ns, logPath, name string, args ...string) (*proc, error) {
	lp, err := lab.StartProcess(context.Background(), logPath, mustLook("ip"), append([]string{"netns", "exec", ns, name}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: filepath.Base(name), cmd: lp.Cmd(), logPath: logPath, done: make(chan struct{})}
	go func() { p.err = lp.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process, waits up to 10 s, then kills its group.
func (p *proc) stop(sig syscall.Signal) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		fmt.Fprintf(os.Stderr, "bench: %s did not stop within 10 s of %v; killed\n", p.name, sig)
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitListening waits until the process's namespace has a socket bound to
// port (UDP, or TCP in LISTEN state), read from /proc/PID/net.
func (p *proc) waitListening(ctx context.Context, proto string, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	want := fmt.Sprintf(":%04X", port)
	for {
		if p.exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.logTail(20))
		}
		// A dual-stack socket ([::]:port) is listed in tcp6/udp6 only.
		b4, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", p.cmd.Process.Pid, proto))
		b6, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s6", p.cmd.Process.Pid, proto))
		for _, line := range strings.Split(string(b4)+string(b6), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1], want) && (proto == "udp" || f[3] == "0A") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not listening on %s port %d after %v\n%s", p.name, proto, port, timeout, p.logTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitLog waits until the process's log contains s.
func (p *proc) waitLog(ctx context.Context, s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if b, _ := os.ReadFile(p.logPath); bytes.Contains(b, []byte(s)) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.logTail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q within %v\n%s", p.name, s, timeout, p.logTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
