package lab

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Listen opens a TCP listener inside the appliance namespace, for a
// service the test process itself runs there (a simulated BMC). The
// socket stays in the namespace; serve it from any goroutine.
func (l *Lab) Listen(addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is left locked, and so ends with the goroutine:
		// it never runs other goroutines in the lab's namespace.
		runtime.LockOSThread()
		ns, err := os.Open("/var/run/netns/" + l.appNS)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("lab: enter %s: %w", l.appNS, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}
