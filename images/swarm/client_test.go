package swarm_test

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

// TestNewClientPort: NewClient listens on the configured port itself, says
// which port is taken when it cannot, refuses a configuration with uTP
// (whose connections would pass the handshake limits by), and frees the
// port when the client closes: a seeder restarting gets it back.
func TestNewClientPort(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	cl, err := swarm.NewClient(swarmtest.Loopback(swarm.Config(0, discard)), swarm.HandshakeLimits())
	if err != nil {
		t.Fatal(err)
	}
	port := cl.LocalPort()
	if port == 0 {
		t.Fatal("the client listens on no port")
	}

	if c2, err := swarm.NewClient(swarmtest.Loopback(swarm.Config(port, discard)), swarm.HandshakeLimits()); err == nil {
		c2.Close()
		t.Errorf("a second client on port %d started, want an error", port)
	} else if !strings.Contains(err.Error(), "127.0.0.1:") {
		t.Errorf("error %q does not name the address", err)
	}

	utp := swarm.Config(0, discard)
	utp.DisableUTP = false
	if c3, err := swarm.NewClient(utp, swarm.HandshakeLimits()); err == nil {
		c3.Close()
		t.Error("a client with uTP started, want an error")
	}

	cl.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d still taken 10 s after the client closed: %v", port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
