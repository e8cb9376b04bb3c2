package tftpd

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// rawClient sends hand-built TFTP packets from one loopback address and
// never acknowledges anything, as a host forging another's address.
type rawClient struct {
	t      *testing.T
	conn   *net.UDPConn
	server *net.UDPAddr
	sent   int
}

func newRawClient(t *testing.T, ip, server string) *rawClient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sa, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, server: sa}
}

// rrq sends a read request for name with the option name, value pairs.
func (c *rawClient) rrq(name string, opts ...string) {
	c.t.Helper()
	b := append([]byte{0, opRRQ}, name...)
	b = append(append(b, 0), "octet"...)
	b = append(b, 0)
	for _, o := range opts {
		b = append(append(b, o...), 0)
	}
	n, err := c.conn.WriteToUDP(b, c.server)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sent += n
}

// drain reads what has arrived until nothing comes for quiet, and returns
// the packets and bytes received and the opcodes seen.
func (c *rawClient) drain(quiet time.Duration) (packets, bytes int, ops map[uint16]int) {
	ops = map[uint16]int{}
	buf := make([]byte, 70000)
	for {
		c.conn.SetReadDeadline(time.Now().Add(quiet))
		n, _, err := c.conn.ReadFromUDP(buf)
		if err != nil {
			return packets, bytes, ops
		}
		packets++
		bytes += n
		if n >= 2 {
			ops[binary.BigEndian.Uint16(buf)]++
		}
	}
}

// waitResults waits until rec holds n results for file.
func waitResults(t *testing.T, rec *recorder, file string, n int) []Result {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := rec.get(file)
		if len(r) >= n {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d results for %s after 30 s, want %d: %v", len(r), file, n, r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(rs []Result, want Result) int {
	n := 0
	for _, r := range rs {
		if r == want {
			n++
		}
	}
	return n
}

const timeout = 300 * time.Millisecond

// A read request nobody acknowledges gets one packet back, never
// retransmitted: what a forged source address can make the server send.
func TestForgedRequestGetsOnePacket(t *testing.T) {
	addr, _, rec := startWith(t, func(s *Server) { s.Timeout = timeout })
	for _, tc := range []struct {
		name  string
		opts  []string
		reply int // bytes
	}{
		{"no options: the first block", nil, 4 + 512},
		{"blksize and tsize: the OACK", []string{"blksize", "1468", "tsize", "0"}, len(packOACK("blksize", "1468", "tsize", "70000"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRawClient(t, "127.0.0.1", addr)
			before := len(rec.get("undionly.kpxe"))
			c.rrq("undionly.kpxe", tc.opts...)
			waitResults(t, rec, "undionly.kpxe", before+1)
			packets, got, _ := c.drain(100 * time.Millisecond)
			t.Logf("sent %d bytes, got %d in %d packets: %.1fx", c.sent, got, packets, float64(got)/float64(c.sent))
			if packets != 1 || got != tc.reply {
				t.Errorf("got %d bytes in %d packets, want one packet of %d", got, packets, tc.reply)
			}
		})
	}
}

// A burst of read requests from one address gets answers for
// MaxPerClient of them; the rest are dropped and counted as busy.
func TestBurstFromOneAddress(t *testing.T) {
	addr, _, rec := startWith(t, func(s *Server) { s.Timeout = timeout })
	c := newRawClient(t, "127.0.0.1", addr)
	const n = 100
	for range n {
		c.rrq("undionly.kpxe")
	}
	rs := waitResults(t, rec, "undionly.kpxe", n)
	packets, got, _ := c.drain(100 * time.Millisecond)
	factor := float64(got) / float64(c.sent)
	t.Logf("%d requests, %d bytes sent, %d bytes back in %d packets: %.2fx; results: %d busy", n, c.sent, got, packets, factor, count(rs, ResultBusy))
	if packets > DefaultMaxPerClient {
		t.Errorf("%d packets back, want at most %d (one per admitted transfer)", packets, DefaultMaxPerClient)
	}
	if count(rs, ResultBusy) < n-DefaultMaxPerClient {
		t.Errorf("results %v: want at least %d busy", rs, n-DefaultMaxPerClient)
	}
	if factor > 3 {
		t.Errorf("amplification %.2fx, want at most 3x", factor)
	}
}

// MaxTransfers bounds the transfers of all addresses; requests from
// outside Allowed are dropped unanswered; a real client is served after.
func TestTotalBoundAndOutside(t *testing.T) {
	addr, ipxe, rec := startWith(t, func(s *Server) {
		s.Timeout = timeout
		s.MaxTransfers = 6
		s.Allowed = func(a netip.Addr) bool { return a != netip.MustParseAddr("127.0.0.9") }
	})
	a, b := newRawClient(t, "127.0.0.2", addr), newRawClient(t, "127.0.0.3", addr)
	for range 4 {
		a.rrq("undionly.kpxe")
		b.rrq("undionly.kpxe")
	}
	rs := waitResults(t, rec, "undionly.kpxe", 8)
	pa, _, _ := a.drain(100 * time.Millisecond)
	pb, _, _ := b.drain(100 * time.Millisecond)
	if pa+pb != 6 || count(rs, ResultBusy) != 2 {
		t.Errorf("%d+%d packets back, results %v: want 6 packets and 2 busy", pa, pb, rs)
	}

	out := newRawClient(t, "127.0.0.9", addr)
	out.rrq("hello.txt")
	if r := waitResults(t, rec, "", 1); r[0] != ResultOutside {
		t.Errorf("outside request: results %v, want [%s]", r, ResultOutside)
	}
	if p, _, _ := out.drain(200 * time.Millisecond); p != 0 {
		t.Errorf("outside request got %d packets, want none", p)
	}

	got, _, err := fetch(t, addr, "undionly.kpxe", 1468)
	if err != nil || len(got) != len(ipxe) {
		t.Fatalf("real client after the flood: %d bytes, %v", len(got), err)
	}
}
