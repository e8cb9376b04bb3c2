package tracker

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// step is one announce of a scripted scenario and what it must return.
type step struct {
	name     string
	from     string        // requester IP
	query    string        // from q()
	advance  time.Duration // clock moves before the announce
	peers    []string      // exact (sorted) peer list expected
	contains []string      // peers that must be in the list (when peers is nil)
	excludes []string      // peers that must not be in the list
	complete int
	leechers int
	swarm    *Swarm // checked after the announce if set
}

func runSteps(t *testing.T, c *clock, tr *Tracker, steps []step) {
	t.Helper()
	for _, s := range steps {
		c.Advance(s.advance)
		r := announceFrom(t, tr, s.from, s.query)
		if r.Failure != "" {
			t.Fatalf("%s: failure %q", s.name, r.Failure)
		}
		if s.peers != nil || (s.contains == nil && s.excludes == nil) {
			if diff := cmp.Diff(s.peers, r.peers); diff != "" {
				t.Errorf("%s: peers (-want +got):\n%s", s.name, diff)
			}
		}
		for _, p := range s.contains {
			if !contains(r.peers, p) {
				t.Errorf("%s: peers %v lack %s", s.name, r.peers, p)
			}
		}
		for _, p := range s.excludes {
			if contains(r.peers, p) {
				t.Errorf("%s: peers %v include %s", s.name, r.peers, p)
			}
		}
		if r.Complete != s.complete || r.Incomplete != s.leechers {
			t.Errorf("%s: complete/incomplete = %d/%d, want %d/%d", s.name, r.Complete, r.Incomplete, s.complete, s.leechers)
		}
		if s.swarm != nil {
			if diff := cmp.Diff(*s.swarm, tr.Swarm(ihA)); diff != "" {
				t.Errorf("%s: Swarm (-want +got):\n%s", s.name, diff)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestEventFlows(t *testing.T) {
	a := func(kv ...string) string { return q(append([]string{"peer_id", peerID("a")}, kv...)...) }
	b := func(kv ...string) string { return q(append([]string{"peer_id", peerID("b")}, kv...)...) }
	tests := []struct {
		name  string
		steps []step
	}{
		{"started, completed, stopped", []step{
			{name: "a starts", from: "10.0.0.2", query: a("event", "started"), leechers: 1,
				swarm: &Swarm{Leechers: 1}},
			{name: "b starts, gets a", from: "10.0.0.3", query: b("event", "started"), leechers: 2,
				peers: []string{"10.0.0.2:6881"}},
			{name: "a completes", from: "10.0.0.2", query: a("event", "completed", "left", "0"), complete: 1, leechers: 1,
				peers: []string{"10.0.0.3:6881"}, swarm: &Swarm{Seeders: 1, Leechers: 1}},
			{name: "b sees seeder a", from: "10.0.0.3", query: b(), complete: 1, leechers: 1,
				peers: []string{"10.0.0.2:6881"}},
			{name: "a stops", from: "10.0.0.2", query: a("event", "stopped", "left", "0"), leechers: 1,
				swarm: &Swarm{Leechers: 1}},
			{name: "b alone", from: "10.0.0.3", query: b(), leechers: 1},
			{name: "b stops", from: "10.0.0.3", query: b("event", "stopped"), swarm: &Swarm{}},
		}},
		{"left=0 without completed is a seeder", []step{
			{name: "a seeds", from: "10.0.0.2", query: a("left", "0"), complete: 1, swarm: &Swarm{Seeders: 1}},
			{name: "b gets a", from: "10.0.0.3", query: b(), complete: 1, leechers: 1, peers: []string{"10.0.0.2:6881"}},
		}},
		{"seeders get only leechers", []step{
			{name: "a seeds", from: "10.0.0.2", query: a("left", "0"), complete: 1},
			{name: "b seeds", from: "10.0.0.3", query: b("left", "0"), complete: 2},
			{name: "c leeches", from: "10.0.0.4", query: q("peer_id", peerID("c")), complete: 2, leechers: 1,
				peers: []string{"10.0.0.2:6881", "10.0.0.3:6881"}},
			{name: "b gets c only", from: "10.0.0.3", query: b("left", "0"), complete: 2, leechers: 1,
				peers: []string{"10.0.0.4:6881"}},
		}},
		{"stopped from an unknown peer", []step{
			{name: "stop", from: "10.0.0.2", query: a("event", "stopped"), swarm: &Swarm{}},
		}},
		{"the spoofable ip parameter is ignored", []step{
			{name: "a claims 1.2.3.4", from: "10.0.0.2", query: a("ip", "1.2.3.4"), leechers: 1},
			{name: "b gets a's real address", from: "10.0.0.3", query: b(), leechers: 2, peers: []string{"10.0.0.2:6881"}},
		}},
		{"IPv4-mapped IPv6 remote is IPv4", []step{
			{name: "a mapped", from: "::ffff:10.0.0.2", query: a(), leechers: 1},
			{name: "b gets a", from: "10.0.0.3", query: b(), leechers: 2, peers: []string{"10.0.0.2:6881"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			runSteps(t, c, newTestTracker(c, nil), tt.steps)
		})
	}
}

func TestRequesterExcluded(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, nil)
	for i := 2; i < 12; i++ {
		announceFrom(t, tr, fmt.Sprintf("10.0.0.%d", i), q("peer_id", peerID(fmt.Sprint(i))))
	}
	// Same client, new port: its old entry (same IP and peer id) is itself too.
	announceFrom(t, tr, "10.0.0.5", q("peer_id", peerID("5"), "port", "7000"))
	for i := 0; i < 20; i++ {
		r := announceFrom(t, tr, "10.0.0.5", q("peer_id", peerID("5"), "port", "7000"))
		if len(r.peers) != 9 || contains(r.peers, "10.0.0.5:6881") || contains(r.peers, "10.0.0.5:7000") {
			t.Fatalf("peers %v: want the 9 others", r.peers)
		}
	}
}

func TestNumwantCapped(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, nil)
	for i := range 80 {
		announceFrom(t, tr, fmt.Sprintf("10.0.1.%d", i), q("peer_id", peerID(fmt.Sprint(i))))
	}
	for _, tt := range []struct {
		numwant string
		want    int
	}{{del, 50}, {"200", 50}, {"50", 50}, {"10", 10}, {"1", 1}, {"0", 0}, {"-1", 50}, {"99999999999999", 50}} {
		r := announceFrom(t, tr, "10.0.2.1", q("numwant", tt.numwant))
		if len(r.peers) != tt.want {
			t.Errorf("numwant %q: %d peers, want %d", tt.numwant, len(r.peers), tt.want)
		}
	}
	tr = newTestTracker(c, func(o *Options) { o.MaxPeers = 5 })
	for i := range 10 {
		announceFrom(t, tr, fmt.Sprintf("10.0.1.%d", i), q())
	}
	if r := announceFrom(t, tr, "10.0.2.1", q("numwant", "8")); len(r.peers) != 5 {
		t.Errorf("MaxPeers 5, numwant 8: %d peers", len(r.peers))
	}
}

func TestExpiry(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, nil)
	ttl := 2*DefaultInterval + DefaultMinInterval
	runSteps(t, c, tr, []step{
		{name: "a", from: "10.0.0.2", query: q(), leechers: 1},
		{name: "b at ttl", from: "10.0.0.3", query: q(), advance: ttl, leechers: 2, peers: []string{"10.0.0.2:6881"}},
		{name: "a gone after ttl", from: "10.0.0.3", query: q(), advance: time.Second, leechers: 1},
	})
	// Sweep drops silent peers of torrents nobody announces to.
	announceFrom(t, tr, "10.0.0.4", q("info_hash", string(ihB[:])))
	c.Advance(ttl + time.Second)
	if n := tr.Sweep(); n != 2 {
		t.Errorf("Sweep dropped %d peers, want 2", n)
	}
	tr.mu.Lock()
	left := len(tr.torrents)
	tr.mu.Unlock()
	if left != 0 {
		t.Errorf("%d torrents left after Sweep", left)
	}
	// Queries expire lazily too.
	announceFrom(t, tr, "10.0.0.4", q())
	c.Advance(ttl + time.Second)
	if got := tr.Swarm(ihA); got != (Swarm{}) {
		t.Errorf("Swarm after expiry = %+v", got)
	}
}

func TestRunSweeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := New(Options{Known: known, Interval: time.Minute, MinInterval: time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- tr.Run(ctx) }()
		announceFrom(t, tr, "10.0.0.2", q())
		time.Sleep(3 * time.Minute) // fake time: ttl is 2m1s, Run sweeps at 1m, 2m, 3m
		synctest.Wait()
		tr.mu.Lock()
		left := len(tr.torrents)
		tr.mu.Unlock()
		if left != 0 {
			t.Errorf("Run left %d torrents", left)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestOriginRule(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, nil)
	o := "10.0.0.1:6881"
	node := func(n int, kv ...string) string {
		return q(append([]string{"peer_id", peerID(fmt.Sprint(n))}, kv...)...)
	}
	seed := func(n int) string { return node(n, "left", "0", "event", "completed") }
	ttl := 2*DefaultInterval + DefaultMinInterval
	runSteps(t, c, tr, []step{
		{name: "origin seeds", from: "10.0.0.1", query: q("peer_id", peerID("origin"), "left", "0"), complete: 1,
			swarm: &Swarm{OriginSeeders: 1}},
		{name: "n2 gets origin", from: "10.0.0.2", query: node(2), complete: 1, leechers: 1, peers: []string{o}},
		{name: "n3 gets origin first", from: "10.0.0.3", query: node(3, "numwant", "1"), complete: 1, leechers: 2, peers: []string{o}},
		{name: "n4", from: "10.0.0.4", query: node(4), complete: 1, leechers: 3, contains: []string{o}},
		{name: "n2 done", from: "10.0.0.2", query: seed(2), complete: 2, leechers: 2,
			peers: []string{"10.0.0.3:6881", "10.0.0.4:6881"}},
		{name: "n3 done", from: "10.0.0.3", query: seed(3), complete: 3, leechers: 1, peers: []string{"10.0.0.4:6881"}},
		{name: "2 seeders: n5 still gets origin", from: "10.0.0.5", query: node(5), complete: 3, leechers: 2,
			peers: []string{o, "10.0.0.2:6881", "10.0.0.3:6881", "10.0.0.4:6881"}},
		{name: "n4 done", from: "10.0.0.4", query: seed(4), complete: 4, leechers: 1, peers: []string{"10.0.0.5:6881"},
			swarm: &Swarm{Seeders: 3, Leechers: 1, OriginSeeders: 1}},
		{name: "3 seeders: origin withheld", from: "10.0.0.6", query: node(6), complete: 4, leechers: 2,
			peers: []string{"10.0.0.2:6881", "10.0.0.3:6881", "10.0.0.4:6881", "10.0.0.5:6881"}},
		{name: "seeder origin gets leechers", from: "10.0.0.1", query: q("peer_id", peerID("origin"), "left", "0"),
			complete: 4, leechers: 2, peers: []string{"10.0.0.5:6881", "10.0.0.6:6881"}},
		// The seeders go silent; origin and n6 keep announcing.
		{name: "origin later", from: "10.0.0.1", query: q("peer_id", peerID("origin"), "left", "0"), advance: ttl - time.Second,
			complete: 4, leechers: 2, peers: []string{"10.0.0.5:6881", "10.0.0.6:6881"}},
		{name: "n5 later", from: "10.0.0.5", query: node(5), complete: 4, leechers: 2, excludes: []string{o}},
		{name: "seeders expired: origin back", from: "10.0.0.6", query: node(6), advance: 2 * time.Second,
			complete: 1, leechers: 2, peers: []string{o, "10.0.0.5:6881"},
			swarm: &Swarm{Leechers: 2, OriginSeeders: 1}},
	})
}

func TestOriginLastResort(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, func(o *Options) { o.OriginThreshold = 1 })
	runSteps(t, c, tr, []step{
		{name: "origin", from: "10.0.0.1", query: q("peer_id", peerID("origin"), "left", "0"), complete: 1},
		{name: "n2 seeds", from: "10.0.0.2", query: q("peer_id", peerID("2"), "left", "0"), complete: 2},
		{name: "n3 gets n2, not origin", from: "10.0.0.3", query: q("peer_id", peerID("3")), complete: 2, leechers: 1,
			peers: []string{"10.0.0.2:6881"}},
		{name: "n3 stops", from: "10.0.0.3", query: q("peer_id", peerID("3"), "event", "stopped"), complete: 2},
		// n2's client restarted on a new port and lost its data: its
		// stale seeder entry is itself, so it would get nothing but the origin.
		{name: "n2 again", from: "10.0.0.2", query: q("peer_id", peerID("2"), "port", "7000"), complete: 2, leechers: 1,
			peers: []string{"10.0.0.1:6881"}},
	})
}

func TestPerTorrentCap(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, func(o *Options) { o.MaxPeersPerTorrent = 5 })
	for i := 1; i <= 5; i++ {
		c.Advance(time.Second)
		announceFrom(t, tr, fmt.Sprintf("10.0.0.%d", i), q())
	}
	c.Advance(time.Second)
	announceFrom(t, tr, "10.0.0.1", q()) // refreshed: now the newest
	for i := 6; i <= 7; i++ {
		c.Advance(time.Second)
		announceFrom(t, tr, fmt.Sprintf("10.0.0.%d", i), q())
	}
	want := []string{"10.0.0.1:6881", "10.0.0.4:6881", "10.0.0.5:6881", "10.0.0.6:6881", "10.0.0.7:6881"}
	if diff := cmp.Diff(want, peersOf(tr, ihA)); diff != "" {
		t.Errorf("peers after cap (-want +got):\n%s", diff)
	}
	if got := tr.Swarm(ihA); got != (Swarm{Leechers: 4, OriginLeechers: 1}) {
		t.Errorf("Swarm = %+v", got)
	}
}

func TestPeersInfo(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, nil)
	announceFrom(t, tr, "10.0.0.9", q("peer_id", peerID("nine"), "uploaded", "7", "downloaded", "8", "left", "9"))
	t0 := c.Now()
	c.Advance(time.Second)
	announceFrom(t, tr, "10.0.0.1", q("peer_id", peerID("origin"), "left", "0", "port", "6881"))
	announceFrom(t, tr, "fd00::2", q("peer_id", peerID("six"), "left", "0", "event", "completed"))
	hexID := func(s string) string { return hex.EncodeToString([]byte(peerID(s))) }
	want := []PeerInfo{
		{Addr: origin, PeerID: hexID("origin"), LastSeen: t0.Add(time.Second), Seeder: true, Origin: true},
		{Addr: mustAP("10.0.0.9:6881"), PeerID: hexID("nine"), Left: 9, Uploaded: 7, Downloaded: 8, LastSeen: t0},
		{Addr: mustAP("[fd00::2]:6881"), PeerID: hexID("six"), LastSeen: t0.Add(time.Second), Seeder: true},
	}
	if diff := cmp.Diff(want, tr.Peers(ihA), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("Peers (-want +got):\n%s", diff)
	}
	if got := tr.Peers(ihB); got != nil {
		t.Errorf("Peers of an empty torrent = %v", got)
	}
}

func TestConcurrent(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, func(o *Options) { o.MaxPeersPerTorrent = 50 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				req := httptest.NewRequest("GET", "/announce?"+q("left", fmt.Sprint(i%3)), nil)
				req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:40000", g, i/250, i%250)
				rec := httptest.NewRecorder()
				tr.ServeHTTP(rec, req)
				if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "d8:completei") {
					t.Errorf("announce: %d %q", rec.Code, rec.Body.String())
					return
				}
				tr.Swarm(ihA)
				tr.Peers(ihA)
				if i%50 == 0 {
					c.Advance(time.Minute)
					tr.Sweep()
				}
			}
		})
	}
	wg.Wait()
	if n := len(tr.Peers(ihA)); n > 50 {
		t.Errorf("%d peers stored, cap 50", n)
	}
}

// Listed holds a peer from its announce until it announces it stopped or
// falls silent past the interval, for its own torrent and peer ID only.
func TestListed(t *testing.T) {
	c := newClock()
	tr := newTestTracker(c, nil)
	ttl := 2*DefaultInterval + DefaultMinInterval
	var a, b [20]byte
	copy(a[:], peerID("a"))
	copy(b[:], peerID("b"))
	announceFrom(t, tr, "10.0.0.2", q("peer_id", peerID("a")))
	announceFrom(t, tr, "10.0.0.3", q("peer_id", peerID("b"), "left", "0", "event", "completed"))
	for _, tc := range []struct {
		name string
		ih   [20]byte
		id   [20]byte
		want bool
	}{
		{"leecher", ihA, a, true},
		{"seeder", ihA, b, true},
		{"other torrent", ihB, a, false},
		{"unknown id", ihA, [20]byte{1}, false},
	} {
		if got := tr.Listed(tc.ih, tc.id); got != tc.want {
			t.Errorf("%s: Listed = %v, want %v", tc.name, got, tc.want)
		}
	}
	announceFrom(t, tr, "10.0.0.3", q("peer_id", peerID("b"), "left", "0", "event", "stopped"))
	if tr.Listed(ihA, b) {
		t.Error("a peer that announced it stopped is still listed")
	}
	if !tr.Listed(ihA, a) {
		t.Error("the other peer's stop unlisted it")
	}
	c.Advance(ttl + time.Second)
	if tr.Listed(ihA, a) {
		t.Error("a peer silent past the interval is still listed")
	}
}
