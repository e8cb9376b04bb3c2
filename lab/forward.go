package lab

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// dialInNS opens a TCP connection to addr from inside the appliance
// namespace; the socket stays there and serves from any goroutine.
func (l *Lab) dialInNS(addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Left locked: the thread ends with the goroutine (see Listen).
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
		c, err := net.Dial("tcp", addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Forward makes addr, a TCP service in the appliance namespace, reachable
// from the test's own namespace: it returns a loopback address there
// whose connections are relayed to addr, for clients that cannot run in
// the namespace (a browser driven over its debugging port). The relay
// stops when the returned function is called.
func (l *Lab) Forward(addr string) (local string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			return false
		}
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
		return true
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := l.dialInNS(addr)
				if err != nil {
					l.logf("forward to %s: %v", addr, err)
					return
				}
				defer out.Close()
				if !track(in, true) || !track(out, true) {
					return
				}
				done := make(chan struct{}, 2)
				go func() { io.Copy(out, in); done <- struct{}{} }()
				go func() { io.Copy(in, out); done <- struct{}{} }()
				<-done
				track(in, false)
				track(out, false)
			}()
		}
	}()
	stop = func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
		conns = nil
	}
	return ln.Addr().String(), stop, nil
}
