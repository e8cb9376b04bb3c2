package tracker

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/google/go-cmp/cmp"
)

func TestFailures(t *testing.T) {
	allowed := func(a netip.Addr) bool { return netip.MustParsePrefix("10.0.0.0/8").Contains(a) }
	tests := []struct {
		name  string
		from  string
		query string
		want  string
	}{
		{"unknown infohash", "10.0.0.2", q("info_hash", string(ihX[:])),
			"unknown torrent: this tracker serves only the appliance's images"},
		{"address outside the allowed networks", "192.168.1.2", q(),
			"address 192.168.1.2 is not allowed to use this tracker"},
		{"disallowed IPv6", "fd00::1", q(), "address fd00::1 is not allowed to use this tracker"},
		{"disallowed before parsing", "192.168.1.2", "", "address 192.168.1.2 is not allowed to use this tracker"},
		{"empty query", "10.0.0.2", "", "missing info_hash"},
		{"short info_hash", "10.0.0.2", q("info_hash", "12345"), "info_hash must be 20 bytes, got 5"},
		{"long info_hash", "10.0.0.2", q("info_hash", string(ihA[:])+"x"), "info_hash must be 20 bytes, got 21"},
		{"bad escape in info_hash", "10.0.0.2", "info_hash=%zz" + "&" + q("info_hash", del),
			`info_hash is not properly URL-escaped: "%zz"`},
		{"missing peer_id", "10.0.0.2", q("peer_id", del), "missing peer_id"},
		{"short peer_id", "10.0.0.2", q("peer_id", "abc"), "peer_id must be 20 bytes, got 3"},
		{"missing port", "10.0.0.2", q("port", del), "missing port"},
		{"port zero", "10.0.0.2", q("port", "0"), `port must be a number from 1 to 65535, got "0"`},
		{"port too big", "10.0.0.2", q("port", "65536"), `port must be a number from 1 to 65535, got "65536"`},
		{"port not a number", "10.0.0.2", q("port", "http"), `port must be a number from 1 to 65535, got "http"`},
		{"missing left", "10.0.0.2", q("left", del), "missing left"},
		{"negative left", "10.0.0.2", q("left", "-1"), `left must be a non-negative integer, got "-1"`},
		{"left not a number", "10.0.0.2", q("left", "1e6"), `left must be a non-negative integer, got "1e6"`},
		{"uploaded not a number", "10.0.0.2", q("uploaded", "lots"), `uploaded must be a non-negative integer, got "lots"`},
		{"downloaded overflows", "10.0.0.2", q("downloaded", "99999999999999999999"),
			`downloaded must be a non-negative integer, got "99999999999999999999"`},
		{"bad event", "10.0.0.2", q("event", "finished"), `event must be started, stopped, completed or empty, got "finished"`},
		{"bad numwant", "10.0.0.2", q("numwant", "all"), `numwant must be an integer, got "all"`},
		{"bad compact", "10.0.0.2", q("compact", "yes"), `compact must be 0 or 1, got "yes"`},
		{"long value clipped", "10.0.0.2", q("left", "x123456789012345678901234567890123456789012345"),
			`left must be a non-negative integer, got "x123456789012345678901234567890123456789..."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			tr := newTestTracker(c, func(o *Options) { o.Allowed = allowed })
			r := announceFrom(t, tr, tt.from, tt.query)
			if r.Failure != tt.want {
				t.Errorf("failure reason %q, want %q", r.Failure, tt.want)
			}
			if r.Interval != 0 || r.RawPeers != nil {
				t.Errorf("failure response has other keys: %+v", r)
			}
			if s := tr.Swarm(ihA); s != (Swarm{}) {
				t.Errorf("rejected announce stored: %+v", s)
			}
		})
	}
}

func TestNilKnownTracksNothing(t *testing.T) {
	tr := New(Options{})
	if r := announceFrom(t, tr, "10.0.0.2", q()); r.Failure != errUnknown.Error() {
		t.Errorf("failure reason %q", r.Failure)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	tr := newTestTracker(newClock(), nil)
	req := httptest.NewRequest("POST", "/announce?"+q(), nil)
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, req)
	var f failure
	if rec.Code != http.StatusMethodNotAllowed || bencode.Unmarshal(rec.Body.Bytes(), &f) != nil || f.Reason == "" {
		t.Errorf("POST: %d %q", rec.Code, rec.Body.Bytes())
	}
}

func TestResponseEncoding(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, func(o *Options) {
		o.Interval, o.MinInterval = 45*time.Second, 10*time.Second
	})
	// ihB's raw bytes include '+', ' ', '&', '=', '%', NUL and 0xff.
	b := func(kv ...string) string { return q(append([]string{"info_hash", string(ihB[:])}, kv...)...) }
	announceFrom(t, tr, "10.0.0.2", b("peer_id", peerID("two"), "port", "51413"))
	announceFrom(t, tr, "192.168.7.3", b("peer_id", peerID("three"), "port", "1", "left", "0"))
	announceFrom(t, tr, "fd00::4", b("peer_id", peerID("four"), "port", "65535"))

	// The raw compact form: 6 bytes per IPv4 peer, 18 per IPv6 peer.
	req := httptest.NewRequest("GET", "/announce?"+b(), nil)
	req.RemoteAddr = "10.0.0.6:40000"
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, req)
	var raw struct {
		Peers  string `bencode:"peers"`
		Peers6 string `bencode:"peers6"`
	}
	if err := bencode.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Peers) != 12 || len(raw.Peers6) != 18 {
		t.Fatalf("peers %d bytes, peers6 %d bytes; want 12 and 18: %q", len(raw.Peers), len(raw.Peers6), rec.Body.Bytes())
	}
	for _, want := range [][]byte{{10, 0, 0, 2, 0xc8, 0xd5}, {192, 168, 7, 3, 0, 1}} {
		if !bytes.Contains([]byte(raw.Peers), want) {
			t.Errorf("compact peers %x lack %x", raw.Peers, want)
		}
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=binary" {
		t.Errorf("Content-Type %q", ct)
	}

	all := []string{"10.0.0.2:51413", "192.168.7.3:1", "[fd00::4]:65535"}
	tests := []struct {
		name    string
		query   string
		ids     []string
		compact bool
	}{
		{"compact by default", b("compact", del), nil, true},
		{"compact=1", b(), nil, true},
		{"compact=0 lists dictionaries with peer ids", b("compact", "0"), []string{peerID("four"), peerID("three"), peerID("two")}, false},
		{"no_peer_id=1", b("compact", "0", "no_peer_id", "1"), []string{"", "", ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := announceFrom(t, tr, "10.0.0.6", tt.query)
			if r.Interval != 45 || r.MinInterval != 10 || r.Complete != 1 || r.Incomplete != 3 {
				t.Errorf("interval %d, min %d, complete %d, incomplete %d", r.Interval, r.MinInterval, r.Complete, r.Incomplete)
			}
			if diff := cmp.Diff(all, r.peers); diff != "" {
				t.Errorf("peers (-want +got):\n%s", diff)
			}
			isCompact := bencode.Unmarshal(r.RawPeers, new(string)) == nil
			if isCompact != tt.compact {
				t.Errorf("compact %v, want %v", isCompact, tt.compact)
			}
			ids := append([]string(nil), r.ids...)
			slices.Sort(ids)
			if diff := cmp.Diff(tt.ids, ids); diff != "" {
				t.Errorf("peer ids (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzAnnounce serves arbitrary query strings: no panic, and every response
// is one valid bencoded dictionary with either a failure reason or an
// interval and peers.
func FuzzAnnounce(f *testing.F) {
	f.Add(q())
	f.Add(q("event", "started", "numwant", "3"))
	f.Add(q("compact", "0", "left", "0", "event", "completed"))
	f.Add(q("info_hash", string(ihB[:]), "event", "stopped"))
	f.Add(q("info_hash", string(ihX[:])))
	f.Add(q("port", del))
	f.Add("info_hash=%zz&peer_id=%%&port=-1")
	f.Add("")
	f.Add("&&=&a=b;c=d")
	f.Fuzz(func(t *testing.T, query string) {
		c := newClock()
		tr := newTestTracker(c, func(o *Options) {
			o.Allowed = func(a netip.Addr) bool { return a != netip.MustParseAddr("10.9.9.9") }
		})
		for _, from := range []string{"10.0.0.1:40000", "10.0.0.2:40000", "[fd00::3]:40000", "10.9.9.9:40000", "10.0.0.2:40001"} {
			r := &http.Request{
				Method:     "GET",
				URL:        &url.URL{Path: Path, RawQuery: query},
				RemoteAddr: from,
				Header:     http.Header{},
			}
			rec := httptest.NewRecorder()
			tr.ServeHTTP(rec, r)
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			var d map[string]any
			if err := bencode.Unmarshal(rec.Body.Bytes(), &d); err != nil {
				t.Fatalf("invalid bencode %q: %v", rec.Body.Bytes(), err)
			}
			_, fail := d["failure reason"].(string)
			_, interval := d["interval"].(int64)
			_, peers := d["peers"]
			if fail == (interval && peers) || (fail && len(d) != 1) {
				t.Fatalf("response %q: want failure reason xor interval and peers", rec.Body.Bytes())
			}
			if p, ok := d["peers"].(string); ok && len(p)%6 != 0 {
				t.Fatalf("compact peers of %d bytes", len(p))
			}
			c.Advance(time.Second)
		}
	})
}
