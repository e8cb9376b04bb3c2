package proxydhcp

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/net/ipv4"
)

// batchConn hands out one batch of packets, then blocks until closed. Its
// WriteBatch refuses a message to failTo, as sendmmsg stops at a message
// the kernel refuses.
type batchConn struct {
	batch  [][]byte
	peer   net.Addr
	failTo string
	mu     sync.Mutex
	read   bool
	wrote  []ipv4.Message
	calls  int
	closed chan struct{}
	once   sync.Once
}

func (c *batchConn) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	c.mu.Lock()
	if !c.read {
		c.read = true
		for i, p := range c.batch {
			ms[i].N = copy(ms[i].Buffers[0], p)
			ms[i].Addr = c.peer
		}
		c.mu.Unlock()
		return len(c.batch), nil
	}
	c.mu.Unlock()
	<-c.closed
	return 0, net.ErrClosed
}

func (c *batchConn) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for i, m := range ms {
		if m.Addr.String() == c.failTo {
			return i, syscall.EPERM
		}
		c.wrote = append(c.wrote, ipv4.Message{Buffers: [][]byte{bytes.Clone(m.Buffers[0])}, Addr: m.Addr})
	}
	return len(ms), nil
}

func (c *batchConn) Close() error                           { c.once.Do(func() { close(c.closed) }); return nil }
func (c *batchConn) ReadFrom([]byte) (int, net.Addr, error) { panic("read in batches") }
func (c *batchConn) WriteTo([]byte, net.Addr) (int, error)  { panic("written in batches") }
func (c *batchConn) LocalAddr() net.Addr                    { return &net.UDPAddr{Port: PortDHCP} }
func (c *batchConn) SetDeadline(time.Time) error            { return nil }
func (c *batchConn) SetReadDeadline(time.Time) error        { return nil }
func (c *batchConn) SetWriteDeadline(time.Time) error       { return nil }

type countingObserver struct {
	mu                 sync.Mutex
	replies            []string
	ignored, malformed int
}

func (o *countingObserver) DHCPReply(mac net.HardwareAddr, _ Decision, _ int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.replies = append(o.replies, mac.String())
}

func (o *countingObserver) DHCPIgnored(string, int) { o.mu.Lock(); o.ignored++; o.mu.Unlock() }
func (o *countingObserver) DHCPMalformed(int)       { o.mu.Lock(); o.malformed++; o.mu.Unlock() }

// One batch of five packets: two answered, one whose reply the kernel
// refuses, one malformed, one from a MAC the proxy does not boot. The
// refused reply is logged and the rest of the batch still goes out, in one
// write call before the refusal and one after it.
func TestServeBatch(t *testing.T) {
	xid := func(b byte) dhcpv4.Modifier { return dhcpv4.WithTransactionID(dhcpv4.TransactionID{0, 0, 0, b}) }
	relayed := dhcpv4.WithGatewayIP(net.IPv4(10, 99, 7, 1))
	pkts := [][]byte{
		mustNew(t, cat(discover(knownMAC, pxe(iana.INTEL_X86PC)...), xid(1))...).ToBytes(),
		mustNew(t, cat(discover(knownMAC, pxe(iana.INTEL_X86PC)...), xid(2), relayed)...).ToBytes(),
		[]byte("not DHCP"),
		mustNew(t, cat(discover(otherMAC, pxe(iana.INTEL_X86PC)...), xid(4))...).ToBytes(),
		mustNew(t, cat(discover(knownMAC, pxe(iana.EFI_X86_64)...), xid(5))...).ToBytes(),
	}
	conn := &batchConn{batch: pkts, peer: &net.UDPAddr{IP: net.IPv4(10, 99, 0, 50), Port: 68},
		failTo: "10.99.7.1:67", closed: make(chan struct{})}
	var logs bytes.Buffer
	obs := &countingObserver{}
	s := &Server{Interface: "test0", Port: PortDHCP, Env: func() Env { return testEnv(false) },
		Log: slog.New(slog.NewTextHandler(&logs, nil)), Observer: obs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		obs.mu.Lock()
		n := len(obs.replies)
		obs.mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}

	conn.mu.Lock()
	defer conn.mu.Unlock()
	var xids []byte
	for _, m := range conn.wrote {
		r, err := dhcpv4.FromBytes(m.Buffers[0])
		if err != nil {
			t.Fatalf("reply to %v does not parse: %v", m.Addr, err)
		}
		if r.MessageType() != dhcpv4.MessageTypeOffer {
			t.Errorf("reply to %v is a %v, want an OFFER", m.Addr, r.MessageType())
		}
		xids = append(xids, r.TransactionID[3])
	}
	if !bytes.Equal(xids, []byte{1, 5}) {
		t.Errorf("replies sent for transactions %v, want [1 5]", xids)
	}
	if conn.calls != 2 {
		t.Errorf("%d write calls, want 2 (up to the refused reply, and after it)", conn.calls)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.replies) != 2 || obs.malformed != 1 || obs.ignored != 1 {
		t.Errorf("observed %d replies, %d malformed, %d ignored; want 2, 1, 1", len(obs.replies), obs.malformed, obs.ignored)
	}
	l := logs.String()
	if !strings.Contains(l, `msg="proxy DHCP send failed"`) || !strings.Contains(l, "to=10.99.7.1:67") || !strings.Contains(l, "operation not permitted") || !strings.Contains(l, "xid=0x00000002") {
		t.Errorf("the refused reply is not logged with its destination, error and transaction:\n%s", l)
	}
	if got := strings.Count(l, `msg="proxy DHCP reply"`); got != 2 {
		t.Errorf("%d reply lines logged, want 2:\n%s", got, l)
	}
}
