package lab

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inAppNS runs fn on an OS thread switched into the appliance namespace,
// for opening sockets that stay there (they serve from any goroutine).
//
// The thread goes back to its own namespace afterwards and is unlocked.
// It must not be left to die with its goroutine: the processes the lab
// starts carry Pdeathsig, which fires when the thread that spawned them
// exits, so ending a thread once used to start a BMC simulator or a VM
// would SIGKILL them. Only if the thread cannot return is it left locked,
// and so ended, rather than run other goroutines in the wrong namespace.
func (l *Lab) inAppNS(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("lab: open this thread's network namespace: %w", err)
			return
		}
		defer own.Close()
		ns, err := os.Open("/var/run/netns/" + l.appNS)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("lab: open namespace %s: %w", l.appNS, err)
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("lab: enter %s: %w", l.appNS, err)
			return
		}
		err = fn()
		if rerr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); rerr != nil {
			// Left locked: the thread ends with this goroutine.
			ch <- fmt.Errorf("lab: leave %s: %w (after: %v)", l.appNS, rerr, err)
			return
		}
		runtime.UnlockOSThread()
		ch <- err
	}()
	return <-ch
}
