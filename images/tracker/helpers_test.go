package tracker

import (
	"net"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

// clock is an injected Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	ihA = [20]byte{0xaa, 1, 2, 3}
	ihB = [20]byte{0xbb, '+', ' ', '&', '=', '%', 0, 0xff}
	ihX = [20]byte{0xee} // not in the catalog
)

func known(ih [20]byte) bool { return ih == ihA || ih == ihB }

// origin is the appliance's own seeder in these tests.
var origin = netip.MustParseAddrPort("10.0.0.1:6881")

func newTestTracker(c *clock, mod func(*Options)) *Tracker {
	o := Options{
		Known:   known,
		Origins: func(a netip.AddrPort) bool { return a == origin },
		Now:     c.Now,
	}
	if mod != nil {
		mod(&o)
	}
	return New(o)
}

// peerID pads name to a 20-byte peer id.
func peerID(name string) string {
	b := []byte("-TT0001-............")
	copy(b[8:], name)
	return string(b)
}

// del as a value in q's pairs removes that parameter.
const del = "\x00del"

// q builds an announce query: a well-formed leecher announce for ihA from
// peer id "p", port 6881, left 100, compact, changed by pairs of kv.
func q(kv ...string) string {
	v := url.Values{
		"info_hash":  {string(ihA[:])},
		"peer_id":    {peerID("p")},
		"port":       {"6881"},
		"uploaded":   {"0"},
		"downloaded": {"0"},
		"left":       {"100"},
		"compact":    {"1"},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == del {
			v.Del(kv[i])
		} else {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v.Encode()
}

// resp is a decoded announce response.
type resp struct {
	Failure     string        `bencode:"failure reason"`
	Interval    int64         `bencode:"interval"`
	MinInterval int64         `bencode:"min interval"`
	Complete    int           `bencode:"complete"`
	Incomplete  int           `bencode:"incomplete"`
	RawPeers    bencode.Bytes `bencode:"peers"`
	Peers6      string        `bencode:"peers6"`

	peers []string `bencode:"-"` // "ip:port", sorted, from peers and peers6
	ids   []string `bencode:"-"` // non-compact only: peer ids
}

// announceFrom serves query as if sent from ip, and decodes the response.
func announceFrom(t testing.TB, tr *Tracker, ip, query string) resp {
	t.Helper()
	req := httptest.NewRequest("GET", "/announce?"+query, nil)
	req.RemoteAddr = net.JoinHostPort(ip, "40000")
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d, body %q", rec.Code, rec.Body.Bytes())
	}
	var r resp
	if err := bencode.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("response %q: %v", rec.Body.Bytes(), err)
	}
	if r.Failure == "" && r.Interval == 0 {
		t.Fatalf("response %q has neither failure reason nor interval", rec.Body.Bytes())
	}
	if len(r.RawPeers) > 0 {
		var compact string
		if err := bencode.Unmarshal(r.RawPeers, &compact); err == nil {
			r.peers = decodeCompact(t, compact, 4)
		} else {
			var list []struct {
				ID   string `bencode:"peer id"`
				IP   string `bencode:"ip"`
				Port int    `bencode:"port"`
			}
			if err := bencode.Unmarshal(r.RawPeers, &list); err != nil {
				t.Fatalf("peers %q: %v", r.RawPeers, err)
			}
			for _, p := range list {
				r.peers = append(r.peers, net.JoinHostPort(p.IP, strconv.Itoa(p.Port)))
				r.ids = append(r.ids, p.ID)
			}
		}
	}
	r.peers = append(r.peers, decodeCompact(t, r.Peers6, 16)...)
	slices.Sort(r.peers)
	return r
}

// decodeCompact decodes BEP 23 / BEP 7 compact peers: an IP of ipLen bytes
// and a big-endian port each.
func decodeCompact(t testing.TB, s string, ipLen int) []string {
	t.Helper()
	if len(s)%(ipLen+2) != 0 {
		t.Fatalf("compact peers of %d bytes is not a multiple of %d", len(s), ipLen+2)
	}
	var out []string
	for b := []byte(s); len(b) > 0; b = b[ipLen+2:] {
		ip, _ := netip.AddrFromSlice(b[:ipLen])
		port := uint16(b[ipLen])<<8 | uint16(b[ipLen+1])
		out = append(out, netip.AddrPortFrom(ip, port).String())
	}
	return out
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// peersOf lists a torrent's stored peers as "ip:port".
func peersOf(tr *Tracker, ih [20]byte) []string {
	var out []string
	for _, p := range tr.Peers(ih) {
		out = append(out, p.Addr.String())
	}
	return out
}
