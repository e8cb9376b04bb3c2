package metrics

import (
	"net"
	"strings"
	"testing"
	"time"

	"moobi/images/swarm/admit"
)

// TestHandshakesClosed: moobi_swarm_handshakes_closed_total follows a real
// admit.Listener's counts, both reasons present from the start: a third
// connection from one address with PerIP 2 counts per-address, a fourth
// handshake with InAll 3 closes the oldest and counts made-room.
func TestHandshakesClosed(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := admit.Listen(ln, admit.Limits{InAll: 3, PerIP: 2})
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	}()
	m := New()
	m.SetHandshakeSource(func() HandshakesClosed {
		st := l.Stats()
		return HandshakesClosed{PerAddress: st.OverPerIP, MadeRoom: st.MadeRoom}
	})
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// waitFor scrapes until every line in want is in the output.
	waitFor := func(after string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out := scrape(m)
			missing := ""
			for _, w := range want {
				if !strings.Contains(out, w) {
					missing = w
				}
			}
			if missing == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: scrape lacks %q after 10 s:\n%s", after, missing, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	const perAddr, madeRoom = `moobi_swarm_handshakes_closed_total{reason="per-address"} `, `moobi_swarm_handshakes_closed_total{reason="made-room"} `
	waitFor("nothing closed yet", perAddr+"0", madeRoom+"0")

	dial("127.0.0.1")
	dial("127.0.0.1")
	dial("127.0.0.1") // over PerIP 2: closed as accepted
	waitFor("a third connection from 127.0.0.1", perAddr+"1", madeRoom+"0")

	dial("127.0.0.2") // the third handshake: InAll 3 reached
	dial("127.0.0.3") // the fourth: the oldest is closed for it
	waitFor("a fourth handshake", perAddr+"1", madeRoom+"1")
}
