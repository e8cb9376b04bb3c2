package swarm_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"moobi/images/swarm"
)

// TestSilentHandshakesDoNotStall: 8 addresses each holding 8 connections
// that never send a byte (64, MaxIncomingHandshakes in all) do not keep a
// real node out: the client still accepts it at once, closing the
// connection that has been silent longest, and the node downloads the
// image from it. The silent connections would be held for the whole test
// (HandshakesTimeout a minute; an attacker reconnecting every 4 s does
// the same with the default).
func TestSilentHandshakesDoNotStall(t *testing.T) {
	s := startSeed(t, swarm.HandshakeLimits())
	var held []net.Conn
	for a := 1; a <= 8; a++ {
		held = append(held, silent(t, s.addr, fmt.Sprintf("127.0.1.%d", a), swarm.MaxIncomingHandshakesPerIP)...)
	}
	if len(held) != swarm.MaxIncomingHandshakes {
		t.Fatalf("%d silent connections, want %d", len(held), swarm.MaxIncomingHandshakes)
	}
	// The client has taken them all (each one's handshake in progress):
	// the last one is still open.
	if err := readErr(held[len(held)-1], 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("last silent connection: read error %v, want it open", err)
	}
	took := s.download(t, 15*time.Second, fmt.Sprintf("beside %d silent connections", len(held)))
	t.Logf("node downloaded the image in %v beside %d silent connections", took.Round(time.Millisecond), len(held))
	if err := readErr(held[0], 5*time.Second); err == nil || isTimeout(err) {
		t.Errorf("the longest silent connection: read error %v, want it closed to make room", err)
	}
}
