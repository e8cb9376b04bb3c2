package swarm_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/admit"
	"moobi/images/swarm/swarmtest"
)

// handshakeSeed is a client seeding a 512 KiB image, for the tests of its
// incoming handshakes.
type handshakeSeed struct {
	client *torrent.Client
	admit  *admit.Listener // its listener, for the counts of what it closed
	addr   *net.TCPAddr
	data   []byte // the image
	ib     []byte // its torrent info
	ih     metainfo.Hash
}

// startSeed starts a handshakeSeed with the handshake limits lim. Its
// handshakes outlast the test (HandshakesTimeout a minute): a silent
// connection holds its place until the client closes it.
func startSeed(t *testing.T, lim admit.Limits) handshakeSeed {
	t.Helper()
	const pieceLen = 64 << 10
	path, data, ib, ih := swarmtest.Image(t, t.TempDir(), 8*pieceLen, pieceLen)
	cfg := swarm.Config(0, slog.New(slog.DiscardHandler))
	cfg.HandshakesTimeout = time.Minute
	seed, al, err := swarm.NewAdmittedClient(swarmtest.Loopback(cfg), lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seed.Close() })
	swarmtest.Add(t, seed, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})
	return handshakeSeed{client: seed, admit: al, addr: seed.ListenAddrs()[0].(*net.TCPAddr), data: data, ib: ib, ih: ih}
}

// download has a new node download the image from s and returns how long
// it took; the test fails if that is more than within, or the node's copy
// differs. after says what the test did before.
func (s handshakeSeed) download(t *testing.T, within time.Duration, after string) time.Duration {
	t.Helper()
	start := time.Now()
	node := swarmtest.Client(t, swarm.NodeConfig(0, slog.New(slog.DiscardHandler)))
	cache := filepath.Join(t.TempDir(), "cache")
	nt := swarmtest.Add(t, node, s.ib, s.ih, &piecestore.File{Path: cache})
	nt.DownloadAll()
	nt.AddPeers([]torrent.PeerInfo{{Addr: s.addr, Trusted: true}})
	select {
	case <-nt.Complete().On():
	case <-time.After(within):
		t.Fatalf("%s, a node did not download the image in %v (it holds %d of %d bytes)", after, within, nt.BytesCompleted(), nt.Length())
	}
	took := time.Since(start)
	got, err := os.ReadFile(cache)
	if err != nil || string(got) != string(s.data) {
		t.Errorf("%s, the node's copy differs from the image (%v)", after, err)
	}
	return took
}

// silent opens n connections to addr from the address from ("" for any)
// that never send a byte: each holds one of the client's handshakes in
// progress until it is closed.
func silent(t *testing.T, addr *net.TCPAddr, from string, n int) []net.Conn {
	t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	var cs []net.Conn
	for range n {
		c, err := d.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

// readErr reads from c for at most d and returns the error: a timeout
// while the client keeps the connection open, EOF or a reset once it
// closed it.
func readErr(c net.Conn, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHandshakesPerIP: a client closes an incoming connection as soon as
// it accepts it when MaxIncomingHandshakesPerIP connections from the same
// address are still handshaking (NewClient's admit.Listener), keeps those
// open, and takes that address's connections again once they are gone: a
// node then downloads the whole image from it.
func TestHandshakesPerIP(t *testing.T) {
	s := startSeed(t, swarm.HandshakeLimits())
	held := silent(t, s.addr, "", swarm.MaxIncomingHandshakesPerIP)
	extra := silent(t, s.addr, "", 1)[0]
	if err := readErr(extra, 30*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("connection %d from one address while %d handshake: read error %v, want it closed", swarm.MaxIncomingHandshakesPerIP+1, swarm.MaxIncomingHandshakesPerIP, err)
	}
	if got := s.admit.Stats(); got != (admit.Stats{OverPerIP: 1}) {
		t.Errorf("NewAdmittedClient's listener counts %+v, want the one connection over the per-address limit", got)
	}
	for i, c := range held {
		if err := readErr(c, 50*time.Millisecond); !isTimeout(err) {
			t.Errorf("silent connection %d: read error %v, want it still open (handshaking)", i, err)
		}
		c.Close()
	}
	s.download(t, 30*time.Second, "after the silent connections closed (else the client still refuses their address)")
}

// TestHandshakesInAll: with MaxIncomingHandshakes connections
// handshaking, a client accepting another closes the one handshaking
// longest to make room, and handshakes the new one at once: silent
// connections never keep others waiting. A connection that completed its
// handshake no longer counts.
func TestHandshakesInAll(t *testing.T) {
	s := startSeed(t, admit.Limits{InAll: 2, PerIP: swarm.MaxIncomingHandshakesPerIP})
	held := silent(t, s.addr, "", 2)
	if err := readErr(held[1], 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("second silent connection: read error %v, want it open", err)
	}
	c := silent(t, s.addr, "", 1)[0]
	// A BitTorrent handshake for the image: the client answers with its
	// own once it takes the connection.
	hs := append([]byte("\x13BitTorrent protocol"), make([]byte, 8)...)
	hs = append(hs, s.ih[:]...)
	hs = append(hs, []byte("-MT0000-handshaketest")[:20]...)
	if _, err := c.Write(hs); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	reply := make([]byte, 68)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("third connection while two handshake: %v, want the client's handshake", err)
	}
	if string(reply[:20]) != "\x13BitTorrent protocol" || string(reply[28:48]) != string(s.ih[:]) {
		t.Errorf("the client answered %q, want a BitTorrent handshake for %x", reply, s.ih)
	}
	if err := readErr(held[0], 5*time.Second); err == nil || isTimeout(err) {
		t.Errorf("oldest silent connection: read error %v, want it closed to make room", err)
	}
	if got := s.admit.Stats(); got != (admit.Stats{MadeRoom: 1}) {
		t.Errorf("NewAdmittedClient's listener counts %+v, want the one handshake closed to make room", got)
	}
	if err := readErr(held[1], 50*time.Millisecond); !isTimeout(err) {
		t.Errorf("second silent connection: read error %v, want it still open", err)
	}

	// The client's first message (its bitfield) follows the handshake's
	// end: the connection no longer counts, so one more silent connection
	// (two handshaking again) closes nothing.
	var msgLen [4]byte
	if _, err := io.ReadFull(c, msgLen[:]); err != nil {
		t.Fatalf("the client's first message after the handshake: %v", err)
	}
	late := silent(t, s.addr, "", 1)[0]
	if err := readErr(late, 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("silent connection after the handshake: read error %v, want it open", err)
	}
	if err := readErr(held[1], 50*time.Millisecond); !isTimeout(err) {
		t.Errorf("second silent connection beside the handshaken one: read error %v, want it open (the handshaken one no longer counts)", err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		t.Errorf("handshaken connection: read error %v, want it open", err)
	}
}
