package httpd

import (
	"net"
	"syscall"
)

// cork holds back partial TCP segments on c until uncork (TCP_CORK), so
// that the response header and the file sendfile(2) sends go out in full
// segments, as nginx's tcp_nopush does. It returns uncork, which sends
// what is left; both are no-ops if c has no socket.
func cork(c net.Conn) (uncork func()) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	set := func(v int) {
		raw.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v) })
	}
	set(1)
	return func() { set(0) }
}
