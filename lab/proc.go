package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is a child process in its own process group whose output goes to a
// log file. It is SIGKILLed when ctx ends, on kill, and (via Pdeathsig) when
// the Go process dies. (Pdeathsig fires when the spawning OS thread exits,
// and Go ends a thread only when a goroutine exits locked to it: so no
// goroutine in this process may do that, or it kills whatever happened to
// be started from its thread. See inAppNS.)
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
}

func startProc(ctx context.Context, log io.Writer, logPath, name string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child keeps its own copy
	if log != nil {
		fmt.Fprintf(log, "lab: + %s %s > %s\n", name, strings.Join(args, " "), logPath)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.kill()
		case <-p.done:
		}
	}()
	return p, nil
}

// kill SIGKILLs the process group unless the process already exited.
func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitTimeout waits up to d for the process to exit and reports whether it did.
func (p *proc) waitTimeout(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// Process is a child process started by StartProcess: in its own process
// group, its output appended to a log file, SIGKILLed with its group when
// the context ends and (via Pdeathsig) when this process dies.
type Process struct{ p *proc }

// StartProcess starts name with args, its output appended to logPath.
func StartProcess(ctx context.Context, logPath, name string, args ...string) (*Process, error) {
	p, err := startProc(ctx, nil, logPath, name, args...)
	if err != nil {
		return nil, err
	}
	return &Process{p}, nil
}

// Cmd returns the process's command (for its Process.Pid and Signal).
func (p *Process) Cmd() *exec.Cmd { return p.p.cmd }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.p.done }

// Wait waits for the process to exit and returns what exec.Cmd.Wait did.
func (p *Process) Wait() error {
	<-p.p.done
	return p.p.err
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool { return p.p.exited() }

// Kill SIGKILLs the process group unless the process already exited.
func (p *Process) Kill() { p.p.kill() }
