package admit

import (
	"errors"
	"net"
	"testing"
	"time"
)

// listen starts a Listener on 127.0.0.1 with lim, and sends what it
// accepts on the channel.
func listen(t *testing.T, lim Limits) (*Listener, chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, lim)
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			accepted <- c
		}
	}()
	return l, accepted
}

// dial connects to l from the address from (on 127/8).
func dial(t *testing.T, l *Listener, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next connection l accepted.
func next(t *testing.T, accepted chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("nothing accepted in 10 s")
		return nil
	}
}

// open reports whether the peer keeps c open: a read times out.
func open(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPerIP(t *testing.T) {
	l, accepted := listen(t, Limits{PerIP: 2})
	a := dial(t, l, "127.0.0.1")
	next(t, accepted)
	dial(t, l, "127.0.0.1")
	next(t, accepted)
	refused := dial(t, l, "127.0.0.1")
	other := dial(t, l, "127.0.0.2") // another address is let in
	next(t, accepted)
	if open(refused) {
		t.Error("third connection from 127.0.0.1 with PerIP 2: open, want it closed")
	}
	if got := l.Stats().OverPerIP; got != 1 {
		t.Errorf("Stats().OverPerIP = %d, want 1", got)
	}
	if !open(a) || !open(other) {
		t.Error("connections within the limits were closed")
	}
	if got := l.Handshaking(); got != 3 {
		t.Errorf("Handshaking() = %d, want 3", got)
	}
	// One handshake ends: the address gets a connection again.
	if !l.Handshook(a.LocalAddr().String()) {
		t.Fatalf("Handshook(%s) = false, want true", a.LocalAddr())
	}
	again := dial(t, l, "127.0.0.1")
	next(t, accepted)
	if !open(again) {
		t.Error("connection from 127.0.0.1 after one of its handshakes ended: closed, want it open")
	}
}

func TestInAll(t *testing.T) {
	l, accepted := listen(t, Limits{InAll: 2})
	oldest := dial(t, l, "127.0.0.1")
	oldestAccepted := next(t, accepted)
	second := dial(t, l, "127.0.0.2")
	next(t, accepted)
	third := dial(t, l, "127.0.0.3")
	next(t, accepted)
	if open(oldest) {
		t.Error("oldest handshake: open, want it closed to make room")
	}
	if !open(second) || !open(third) {
		t.Error("newer handshakes were closed")
	}
	if got := l.Stats().MadeRoom; got != 1 {
		t.Errorf("Stats().MadeRoom = %d, want 1", got)
	}
	// The library sets its handshake deadline on a connection that may
	// have been closed to make room already, and panics if that fails.
	if err := oldestAccepted.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Errorf("SetDeadline on a connection closed to make room: %v, want nil", err)
	}
	if _, err := oldestAccepted.Read(make([]byte, 1)); err == nil {
		t.Error("read from a connection closed to make room: no error")
	}

	// A handshaken connection no longer counts, and is never closed to
	// make room; a closed one leaves its place.
	if !l.Handshook(second.LocalAddr().String()) {
		t.Fatal("Handshook(second) = false")
	}
	fourth := dial(t, l, "127.0.0.4")
	fourthAccepted := next(t, accepted)
	if !open(second) || !open(third) || !open(fourth) {
		t.Error("a connection was closed although two handshake (third, fourth)")
	}
	fourthAccepted.Close()
	dial(t, l, "127.0.0.5")
	next(t, accepted)
	if !open(third) {
		t.Error("third: closed, want it open (fourth's close left room)")
	}
	if got := l.Handshaking(); got != 2 {
		t.Errorf("Handshaking() = %d, want 2 (third, fifth)", got)
	}
	if l.Handshook("127.0.0.9:1") {
		t.Error("Handshook of an address never accepted = true")
	}
}
