package lab

import (
	"io"
	"net"
	"sync"
)

// dialInNS opens a TCP connection to addr from inside the appliance
// namespace; the socket stays there and serves from any goroutine.
func (l *Lab) dialInNS(addr string) (c net.Conn, err error) {
	err = l.inAppNS(func() error {
		c, err = net.Dial("tcp", addr)
		return err
	})
	return c, err
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
