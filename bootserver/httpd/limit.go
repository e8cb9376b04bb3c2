package httpd

import (
	"net"
	"sync"
)

// MaxConnsPerAddress bounds the connections one IP address holds open to
// the HTTP service; more are closed as they are accepted. A node opens at
// most 10 at once (its web seed), iPXE one, a browser six.
const MaxConnsPerAddress = 128

// perAddress is a listener that closes a connection as soon as it accepts
// it while max connections from the same IP address are open: one host
// holding thousands of idle or half-sent requests open (each a goroutine
// and its buffers until ReadHeaderTimeout) cannot grow the appliance.
type perAddress struct {
	net.Listener
	max     int
	refused func() // may be nil

	mu   sync.Mutex
	open map[string]int
}

func limitPerAddress(ln net.Listener, max int, refused func()) *perAddress {
	return &perAddress{Listener: ln, max: max, refused: refused, open: map[string]int{}}
}

func (l *perAddress) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		ip := tc.RemoteAddr().(*net.TCPAddr).IP.String()
		l.mu.Lock()
		if l.open[ip] >= l.max {
			l.mu.Unlock()
			// Counted before the close the client sees.
			if l.refused != nil {
				l.refused()
			}
			c.Close()
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		return &countedConn{TCPConn: tc, done: func() { l.release(ip) }}, nil
	}
}

func (l *perAddress) release(ip string) {
	l.mu.Lock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
	l.mu.Unlock()
}

// countedConn tells its listener once when it is closed. It is a
// *net.TCPConn still for net/http (ReadFrom: sendfile) and cork
// (SyscallConn).
type countedConn struct {
	*net.TCPConn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(c.done)
	return err
}
