package bootserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/net/ipv4"

	"moobi/bootserver/proxydhcp"
	"moobi/inventory"
	"moobi/metrics"
	"moobi/nodes"
)

// packetConn hands out prepared packets, as many as a batch holds (a
// storm fills every batch), and discards what is written; after the last
// packet it cancels the serve context.
type packetConn struct {
	pkts   [][]byte
	n      int // packets to hand out
	i      int
	stop   context.CancelFunc
	peer   net.Addr
	writes atomic.Int64
}

func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.i == c.n {
		c.stop()
		return 0, nil, net.ErrClosed
	}
	p := c.pkts[c.i%len(c.pkts)]
	c.i++
	return copy(b, p), c.peer, nil
}

func (c *packetConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.writes.Add(1)
	return len(b), nil
}

func (c *packetConn) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	n := 0
	for n < len(ms) && c.i < c.n {
		ms[n].N, _, _ = c.ReadFrom(ms[n].Buffers[0])
		ms[n].Addr = c.peer
		n++
	}
	if n == 0 {
		_, _, err := c.ReadFrom(nil)
		return 0, err
	}
	return n, nil
}

func (c *packetConn) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	c.writes.Add(int64(len(ms)))
	return len(ms), nil
}

func (c *packetConn) Close() error                     { return nil }
func (c *packetConn) LocalAddr() net.Addr              { return &net.UDPAddr{Port: proxydhcp.PortDHCP} }
func (c *packetConn) SetDeadline(time.Time) error      { return nil }
func (c *packetConn) SetReadDeadline(time.Time) error  { return nil }
func (c *packetConn) SetWriteDeadline(time.Time) error { return nil }

// reset hands out the next n packets (continuing through pkts), then calls stop.
func (c *packetConn) reset(n int, stop context.CancelFunc) {
	c.n, c.stop = c.i+n, stop
	c.writes.Store(0)
}

// benchService is a Service over an inventory that boots every MAC (as
// `make bench` configures it), with the proxy DHCP observer wired to a
// node registry and the metrics as Run wires them.
func benchService(b *testing.B) (*Service, *observer) {
	b.Helper()
	dir := b.TempDir()
	for _, f := range []string{"ipxe/undionly.kpxe", "vmlinuz", "initrd.img"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`appliance:
  interface: lo
  address: 10.98.0.1
  http_port: 8080
  data_dir: %[1]s/data
  ipxe_dir: %[1]s/ipxe
  bios_binary: undionly.kpxe
  unknown_hosts: bench
profiles:
  bench:
    kernel: %[1]s/vmlinuz
    initrd: [%[1]s/initrd.img]
hosts:
  bench-node01:
    mac: 52:54:00:be:0c:01
    profile: bench
`, dir)
	path := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	// moobi serve logs at info level: one line per reply, formatted here
	// and written nowhere.
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	store, err := inventory.Open(path, log)
	if err != nil {
		b.Fatal(err)
	}
	s := &Service{Store: store, Metrics: metrics.New(), Log: log, serverIP: net.IPv4(10, 98, 0, 1).To4()}
	reg := nodes.New()
	reg.Observer = s.Metrics
	reg.Listed = s.listed
	return s, &observer{Metrics: s.Metrics, nodes: reg, inv: store.Current}
}

// discovers returns n BIOS PXE DISCOVERs from distinct MACs, relayed as
// perfdhcp sends them (giaddr set).
func discovers(b *testing.B, n int) [][]byte {
	b.Helper()
	out := make([][]byte, n)
	for i := range out {
		mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(mac[2:], uint32(i)+1)
		p, err := dhcpv4.New(
			dhcpv4.WithHwAddr(mac),
			dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
			dhcpv4.WithGatewayIP(net.IPv4(10, 98, 0, 2)),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = p.ToBytes()
	}
	return out
}

// BenchmarkDISCOVER is the proxy DHCP path of one DISCOVER, as `make
// bench` drives it: read, decide, send, log the reply at info level, and
// record it in the metrics and the node registry. Each DISCOVER comes from
// a new MAC (2^17 of them, cycled), so past the first MaxNodes the
// registry is full and every reply adds a node and evicts old ones, as
// under perfdhcp's million random MACs. With persist, the registry is
// saved to a file every 200 ms meanwhile, as moobi serve saves it (every
// 2 s there, for a longer run).
func BenchmarkDISCOVER(b *testing.B) {
	for _, persist := range []bool{false, true} {
		b.Run(fmt.Sprintf("persist=%v", persist), func(b *testing.B) {
			s, obs := benchService(b)
			pkts := discovers(b, 1<<17)
			// Fill the registry first: the steady state of a storm.
			srv := &proxydhcp.Server{Interface: "lo", Port: proxydhcp.PortDHCP, Env: s.dhcpEnv, Log: s.Log, Observer: obs}
			conn := &packetConn{pkts: pkts, peer: &net.UDPAddr{IP: net.IPv4(10, 98, 0, 2), Port: 67}}
			serve := func(n int) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				conn.reset(n, cancel)
				if err := srv.Serve(ctx, conn); err != nil {
					b.Fatal(err)
				}
			}
			serve(nodes.MaxNodes + nodes.MaxNodes/2)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			if persist {
				go func() {
					defer close(done)
					obs.nodes.Persist(ctx, filepath.Join(b.TempDir(), "nodes.json"), 200*time.Millisecond, s.Log)
				}()
			} else {
				close(done)
			}
			b.ReportAllocs()
			b.ResetTimer()
			serve(b.N)
			b.StopTimer()
			cancel()
			<-done
			if got := conn.writes.Load(); got < int64(b.N) {
				b.Fatalf("%d replies to %d DISCOVERs", got, b.N)
			}
		})
	}
}
