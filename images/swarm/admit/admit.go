// Package admit bounds the incoming peer connections a BitTorrent client
// handshakes at once. It is a listener wrapped around the client's TCP
// listener: a connection counts from the moment it is accepted until the
// client says its handshake completed (Handshook, from the library's
// CompletedHandshake callback) or it is closed.
//
// Upstream anacrolix/torrent starts a goroutine per accepted connection
// without limit, and a connection that sends random bytes makes it compute
// an encryption handshake's Diffie-Hellman key: one host spraying garbage
// at the appliance's port kept 10,000 handshakes open and the appliance
// grew to 380 MiB. Its own defence (refusing a whole /24 for 15 minutes
// after one failed handshake) would lock a rack out of its boot network.
package admit

import (
	"container/list"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bounds the handshakes in progress. Zero means no limit.
type Limits struct {
	// InAll bounds the handshakes in progress in all. Past it, accepting
	// another closes the one handshaking longest to make room: the
	// accept loop never waits, so connections that never send a byte
	// cannot keep a peer out.
	InAll int
	// PerIP bounds the handshakes in progress from one IP address; more
	// are closed as they are accepted.
	PerIP int
}

// Stats counts the connections the listener closed.
type Stats struct {
	// OverPerIP counts connections closed as accepted: PerIP handshakes
	// from their address were in progress.
	OverPerIP int64
	// MadeRoom counts handshakes closed to make room for a newer one
	// (InAll).
	MadeRoom int64
}

// Listener accepts connections within its Limits. Accept returns a
// connection that counts as handshaking until Handshook names it or it is
// closed.
type Listener struct {
	net.Listener
	lim Limits

	overPerIP, madeRoom atomic.Int64

	mu      sync.Mutex
	pending list.List // of *conn, oldest first
	byIP    map[string]int
}

// Listen wraps ln.
func Listen(ln net.Listener, lim Limits) *Listener {
	return &Listener{Listener: ln, lim: lim, byIP: map[string]int{}}
}

// Accept returns the next connection within the limits. The TCP
// connections it returns close with a reset (SO_LINGER 0), as
// anacrolix/torrent sets on the connections it accepts itself (it can no
// longer see they are *net.TCPConn); those it refuses close normally.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if l.lim.PerIP > 0 && l.byIP[ip] >= l.lim.PerIP {
			l.mu.Unlock()
			l.overPerIP.Add(1)
			c.Close()
			continue
		}
		var oldest *conn
		if l.lim.InAll > 0 && l.pending.Len() >= l.lim.InAll {
			oldest = l.pending.Front().Value.(*conn)
			l.doneLocked(oldest)
			oldest.evicted.Store(true)
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		hc := &conn{Conn: c, l: l, ip: ip, remote: c.RemoteAddr().String()}
		hc.elem = l.pending.PushBack(hc)
		l.byIP[ip]++
		l.mu.Unlock()
		if oldest != nil {
			l.madeRoom.Add(1)
			oldest.Conn.Close()
		}
		return hc, nil
	}
}

// Handshook ends the handshake of the accepted connection from remote
// (its address as a string, as net.Addr.String gives it): it no longer
// counts against the limits. It reports whether such a connection was
// handshaking.
func (l *Listener) Handshook(remote string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for e := l.pending.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*conn); c.remote == remote {
			l.doneLocked(c)
			return true
		}
	}
	return false
}

// Handshaking returns the number of accepted connections handshaking.
func (l *Listener) Handshaking() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending.Len()
}

// Stats returns the counts of connections closed so far.
func (l *Listener) Stats() Stats {
	return Stats{OverPerIP: l.overPerIP.Load(), MadeRoom: l.madeRoom.Load()}
}

// doneLocked removes c from the handshakes in progress, once.
func (l *Listener) doneLocked(c *conn) {
	if c.elem == nil {
		return
	}
	l.pending.Remove(c.elem)
	c.elem = nil
	if l.byIP[c.ip]--; l.byIP[c.ip] <= 0 {
		delete(l.byIP, c.ip)
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// conn is an accepted connection; it leaves the handshakes in progress
// when it is closed.
type conn struct {
	net.Conn
	l      *Listener
	ip     string
	remote string
	elem   *list.Element // in l.pending while handshaking; guarded by l.mu
	// evicted: closed by the listener to make room.
	evicted atomic.Bool
}

func (c *conn) Close() error {
	c.l.mu.Lock()
	c.l.doneLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// SetDeadline succeeds on a connection the listener closed to make room:
// anacrolix/torrent v1.61.0 panics when setting the handshake deadline
// fails (Client.runReceivedConn), which it does on a closed connection.
// The handshake's first read then fails, and the client drops the
// connection.
func (c *conn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	if err != nil && c.evicted.Load() {
		return nil
	}
	return err
}
