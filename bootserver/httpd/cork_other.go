//go:build !linux

package httpd

import "net"

func cork(net.Conn) (uncork func()) { return func() {} }
