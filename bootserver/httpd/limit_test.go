package httpd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The connections Serve hands net/http still send files with sendfile
// (io.ReaderFrom) and can be corked (syscall.Conn).
var (
	_ io.ReaderFrom = (*countedConn)(nil)
	_ syscall.Conn  = (*countedConn)(nil)
)

// TestConnsPerAddress: Serve closes a connection as it accepts it while
// its address holds MaxConnsPerAddress open (idle ones included), counts
// it, answers on the connections it kept, and takes the address's
// connections again once one of them is closed.
func TestConnsPerAddress(t *testing.T) {
	s, _, _ := setupServer(t)
	var refused atomic.Int64
	s.Refused = func() { refused.Add(1) }
	addr := serveLoopback(t, s)

	// request sends GET /healthz on c and reads the answer's status.
	request := func(c net.Conn) (int, error) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: moobi\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var held []net.Conn
	for range MaxConnsPerAddress {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The first connection answers: all MaxConnsPerAddress were accepted
	// in order before the next one.
	if code, err := request(held[0]); err != nil || code != 200 {
		t.Fatalf("a connection within the limit: status %d, %v", code, err)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("connection %d from one address: read %d bytes, %v; want it closed", MaxConnsPerAddress+1, n, err)
	}
	if got := refused.Load(); got != 1 {
		t.Errorf("refused connections counted: %d, want 1", got)
	}
	if code, err := request(held[len(held)-1]); err != nil || code != 200 {
		t.Fatalf("the last connection within the limit: status %d, %v", code, err)
	}

	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		code, err := request(c)
		c.Close()
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a connection after one of the %d closed: %v (%d refused): the address is still refused", MaxConnsPerAddress, err, refused.Load())
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
