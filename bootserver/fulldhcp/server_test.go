package fulldhcp

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"moobi/lab"
)

// inNewNetns moves the test's goroutine, locked to its thread, into a
// network namespace of its own with lo up: sockets it opens are there.
// The thread is discarded when the test's goroutine ends, still locked.
func inNewNetns(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
}

// TestServe runs the server on lo in a namespace of its own: a corrupt
// lease file is kept aside and logged; a lease is on disk by the time its
// ACK arrives, gone after a RELEASE, and a restart loads what is there.
func TestServe(t *testing.T) {
	lab.RequireRoot(t)
	inNewNetns(t)
	dir := t.TempDir()
	leaseFile := filepath.Join(dir, "state", "dhcp-leases.json")
	os.MkdirAll(filepath.Dir(leaseFile), 0o755)
	os.WriteFile(leaseFile, []byte(`{"version": 1, "leases": [`), 0o644)
	env := testEnv()
	env.ServerIP = net.IPv4(127, 0, 0, 1).To4()
	env.Subnet = netip.MustParsePrefix("127.0.0.0/8")
	env.RangeStart, env.RangeEnd = a("127.0.0.100"), a("127.0.0.110")
	env.Router = netip.Addr{}
	var logs bytes.Buffer
	newServer := func() *Server {
		return &Server{Interface: "lo", Env: func() Env { return env }, LeaseFile: leaseFile, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	}
	s := newServer()
	conn, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "DHCP LEASES LOST") {
		t.Errorf("a corrupt lease file is not logged loudly:\n%s", logs.String())
	}
	if aside, _ := filepath.Glob(leaseFile + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("corrupt lease file not kept aside: %v", aside)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, conn) }()

	client, err := net.ListenUDP("udp4", &net.UDPAddr{Port: dhcpv4.ClientPort})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0x42}
	server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: dhcpv4.ServerPort}
	// RENEWING: ciaddr set; the ACK goes to ciaddr:68.
	renew := msg(t, mac, dhcpv4.MessageTypeRequest, ciaddr("127.0.0.100"))
	if _, err := client.WriteTo(renew.ToBytes(), server); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := client.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no reply: %v\n%s", err, logs.String())
	}
	onDisk, _ := os.ReadFile(leaseFile)
	ack, err := dhcpv4.FromBytes(buf[:n])
	if err != nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(net.IPv4(127, 0, 0, 100)) {
		t.Fatalf("reply %v, %v; want an ACK of 127.0.0.100", ack, err)
	}
	if !strings.Contains(string(onDisk), mac.String()) {
		t.Errorf("the ACK came before its lease was on disk:\n%s", onDisk)
	}
	release := msg(t, mac, dhcpv4.MessageTypeRelease, ciaddr("127.0.0.100"))
	client.WriteTo(release.ToBytes(), server)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(leaseFile)
		if !strings.Contains(string(b), mac.String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease kept after a RELEASE:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	client.WriteTo(renew.ToBytes(), server)
	if _, _, err := client.ReadFrom(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// A restart loads the lease.
	logs.Reset()
	s2 := newServer()
	conn2, err := s2.Listen()
	if err != nil {
		t.Fatal(err)
	}
	conn2.Close()
	if !strings.Contains(logs.String(), "leases=1") || len(s2.table.Leases()) != 1 {
		t.Errorf("restart: %d leases loaded:\n%s", len(s2.table.Leases()), logs.String())
	}
}

// TestPingProber: in a namespace of its own, an address that answers
// (lo's) is in use and one nobody holds is free, over the unprivileged
// ICMP socket and over the raw socket it falls back to.
func TestPingProber(t *testing.T) {
	lab.RequireRoot(t)
	inNewNetns(t)
	// A veth pair: 10.77.0.1 on one end, nothing on the other.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("10.77.0.1/24")
	if err := netlink.AddrAdd(veth, addr); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"probe0", "probe1"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	p := PingProber{Timeout: 300 * time.Millisecond}
	for _, groups := range []string{"1 0", "0 2147483647"} { // raw socket; unprivileged ICMP socket
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte(groups), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			addr string
			want bool
		}{{"127.0.0.1", true}, {"10.77.0.1", true}, {"10.77.0.2", false}} {
			got, err := p.InUse(context.Background(), netip.MustParseAddr(tc.addr))
			if err != nil || got != tc.want {
				t.Errorf("ping_group_range %q: InUse(%s) = %v, %v; want %v", groups, tc.addr, got, err, tc.want)
			}
		}
	}
}

// TestSaveOrder races two saves: the first has taken its snapshot (one
// lease) and is held before it writes; a second lease is bound and saved.
// The lease file must end up with both leases, whichever save finishes
// first: an older snapshot never replaces a newer one.
func TestSaveOrder(t *testing.T) {
	leaseFile := filepath.Join(t.TempDir(), "dhcp-leases.json")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &Server{LeaseFile: leaseFile, Log: slog.New(slog.DiscardHandler), table: NewTable(nil)}
	bind := func(mac, addr string) {
		s.mu.Lock()
		s.table.Apply(Change{Kind: ChangeBind, MAC: mac, Addr: a(addr), Until: now.Add(time.Hour)})
		s.mu.Unlock()
	}
	firstHeld, release, secondWrote := make(chan struct{}), make(chan struct{}), make(chan struct{})
	calls := 0
	s.writeLeases = func(path string, leases []Lease) error {
		s.mu.Lock()
		calls++
		call := calls
		s.mu.Unlock()
		if call == 1 {
			close(firstHeld)
			<-release
		}
		err := SaveLeases(path, leases)
		if call == 2 {
			close(secondWrote)
		}
		return err
	}
	bind("52:54:00:00:00:01", "10.0.0.101")
	first := make(chan bool)
	go func() { first <- s.save() }()
	<-firstHeld
	bind("52:54:00:00:00:02", "10.0.0.102")
	second := make(chan bool)
	go func() { second <- s.save() }()
	// The second save must wait for the first; without that it writes at
	// once. Give it the time to do so before the first one goes on.
	select {
	case <-secondWrote:
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if !<-first || !<-second {
		t.Fatal("a save failed")
	}
	leases, _, err := LoadLeases(leaseFile, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 2 {
		t.Errorf("the lease file holds %v, want the leases of 10.0.0.101 and 10.0.0.102", leases)
	}
}
