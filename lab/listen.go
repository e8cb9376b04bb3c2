package lab

import "net"

// Listen opens a TCP listener inside the appliance namespace, for a
// service the test process itself runs there (a simulated BMC). The
// socket stays in the namespace; serve it from any goroutine.
func (l *Lab) Listen(addr string) (ln net.Listener, err error) {
	err = l.inAppNS(func() error {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}
