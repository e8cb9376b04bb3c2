package seeder

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"moobi/images/piecestore"
	"moobi/images/swarm"
	"moobi/images/swarm/swarmtest"
)

func TestShouldRest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v      restView
		copies int
		want   bool
	}{
		{"every piece held once", restView{holders: []int{1, 2, 1}, spent: true}, 1, true},
		{"a piece held by nobody", restView{holders: []int{1, 0, 3}, spent: true}, 1, false},
		{"a piece held once, two copies wanted", restView{holders: []int{2, 1, 2}, spent: true}, 2, false},
		{"two copies of each", restView{holders: []int{2, 2, 5}, spent: true}, 2, true},
		{"covered, but a peer is starving", restView{holders: []int{1, 1}, starving: 1, spent: true}, 1, false},
		{"never rests with copies 0", restView{holders: []int{9, 9}, spent: true}, 0, false},
		{"no pieces known", restView{spent: true}, 1, false},
		{"covered, but the budget is not spent", restView{holders: []int{3, 3}}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shouldRest(tc.v, tc.copies); got != tc.want {
				t.Errorf("shouldRest(%+v, %d) = %v, want %v", tc.v, tc.copies, got, tc.want)
			}
		})
	}
}

// TestLimitUpload: the cap follows UploadBytesPerSec as it changes, and
// its burst always holds a request.
func TestLimitUpload(t *testing.T) {
	var bps int64
	s := &Seeder{UploadBytesPerSec: func() int64 { return bps }}
	lim := rate.NewLimiter(rate.Inf, 0)
	for _, tc := range []struct {
		bps   int64
		limit rate.Limit
		burst int
	}{
		{0, rate.Inf, 0},
		{12_500_000, 12_500_000, 3_125_000},
		{125_000, 125_000, 256 << 10},
		{0, rate.Inf, 256 << 10},
	} {
		bps = tc.bps
		s.limitUpload(lim)
		if lim.Limit() != tc.limit || lim.Burst() != tc.burst {
			t.Errorf("%d bytes/s: limiter %v, burst %d; want %v, %d", tc.bps, lim.Limit(), lim.Burst(), tc.limit, tc.burst)
		}
	}
}

// TestSpend: the budget is spent once restBudget copies went out within
// restWindow; uploads older than the window do not count; a version that
// rested within the window may rest again at once.
func TestSpend(t *testing.T) {
	const size = 1000
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := &entry{}
	steps := []struct {
		at    time.Duration
		total int64
		rest  bool // e.resting before the step
		want  bool
	}{
		{0, 0, false, false},
		{10 * time.Second, 1000, false, false},
		{20 * time.Second, 1249, false, false},
		{30 * time.Second, 1250, false, true},
		// Five minutes later, the 1,250 bytes sent are out of the window.
		{6 * time.Minute, 1300, false, false},
		{7 * time.Minute, 2600, false, true},
		{8 * time.Minute, 2600, true, true},
		// Rested at 8 min: spent until 13 min, whatever was sent.
		{12*time.Minute + 59*time.Second, 2600, false, true},
		{13*time.Minute + time.Second, 2600, false, false},
	}
	for _, st := range steps {
		e.resting = st.rest
		if got := e.spend(t0.Add(st.at), st.total, size); got != st.want {
			t.Errorf("at %v, %d bytes sent in all: spent %v, want %v", st.at, st.total, got, st.want)
		}
	}
}

func TestAssign(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type sg = suggestion[string]
	for _, tc := range []struct {
		name    string
		scarce  []int
		peers   []string
		prev    map[int]sg
		now     time.Time
		perPeer int
		room    map[string]int   // each peer's own, instead of perPeer
		asked   map[string][]int // the pieces each peer asked the seeder for
		want    map[int]sg
	}{
		{"round robin, at most perPeer each", []int{1, 2, 3, 4, 5}, []string{"a", "b"}, nil, t0, 2, nil, nil,
			map[int]sg{1: {"a", t0}, 2: {"b", t0}, 3: {"a", t0}, 4: {"b", t0}}},
		{"nobody to tell", []int{1, 2}, nil, nil, t0, 2, nil, nil, map[int]sg{}},
		{"each peer has its own room", []int{1, 2, 3, 4, 5}, []string{"a", "b"}, nil, t0, 0, map[string]int{"a": 1, "b": 3}, nil,
			map[int]sg{1: {"a", t0}, 2: {"b", t0}, 3: {"b", t0}, 4: {"b", t0}}},
		{"pieces its peer asked for stay with it beyond its room", []int{1, 2, 3}, []string{"a", "b"},
			map[int]sg{1: {"a", t0}, 2: {"a", t0}}, t0, 0, map[string]int{"a": 1, "b": 4}, map[string][]int{"a": {1, 2}},
			map[int]sg{1: {"a", t0}, 2: {"a", t0}, 3: {"b", t0}}},
		{"a fresh suggestion stays with its peer beyond its room", []int{1, 2, 3}, []string{"a", "b"},
			map[int]sg{1: {"a", t0}, 2: {"a", t0}}, t0.Add(time.Second), 0, map[string]int{"a": 1, "b": 4}, nil,
			map[int]sg{1: {"a", t0}, 2: {"a", t0}, 3: {"b", t0.Add(time.Second)}}},
		{"an old suggestion stays with the peer that asked for it", []int{1}, []string{"a", "b"},
			map[int]sg{1: {"a", t0}}, t0.Add(suggestFor), 4, nil, map[string][]int{"a": {1}}, map[int]sg{1: {"a", t0}}},
		{"a suggestion stays with its peer", []int{1, 2}, []string{"a", "b"},
			map[int]sg{2: {"a", t0}}, t0.Add(time.Second), 1, nil, nil,
			map[int]sg{1: {"b", t0.Add(time.Second)}, 2: {"a", t0}}},
		{"a held piece is no longer suggested", []int{2}, []string{"a"},
			map[int]sg{1: {"a", t0}, 2: {"a", t0}}, t0, 4, nil, nil, map[int]sg{2: {"a", t0}}},
		{"a suggestion expires and goes to another peer", []int{1}, []string{"a", "b"},
			map[int]sg{1: {"a", t0}}, t0.Add(suggestFor), 4, nil, nil, map[int]sg{1: {"b", t0.Add(suggestFor)}}},
		{"an expired suggestion stays when no other peer has room", []int{1}, []string{"a"},
			map[int]sg{1: {"a", t0}}, t0.Add(suggestFor), 4, nil, nil, map[int]sg{1: {"a", t0.Add(suggestFor)}}},
		{"a peer that left loses its suggestions", []int{1}, []string{"b"},
			map[int]sg{1: {"a", t0}}, t0, 4, nil, nil, map[int]sg{1: {"b", t0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assign(tc.scarce, tc.peers, func(p string) int {
				if n, ok := tc.room[p]; ok {
					return n
				}
				return tc.perPeer
			}, func(p string, i int) bool { return slices.Contains(tc.asked[p], i) }, tc.prev, tc.now)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(sg{})); diff != "" {
				t.Errorf("assign (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEndgame(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scarce []int
		peers  []string
		want   map[string][]int
		out    map[string]int
	}{
		{"no scarce piece", nil, []string{"a", "b"}, nil, nil},
		{"as many scarce pieces as peers", []int{1, 2}, []string{"a", "b"}, map[string][]int{"a": {1}}, nil},
		{"idle peers get the least suggested pieces", []int{1, 2}, []string{"a", "b", "c", "d"},
			map[string][]int{"a": {1}}, map[string]int{"b": 2, "c": 1, "d": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := endgame(tc.scarce, tc.peers, tc.want)
			if len(got) == 0 && len(tc.out) == 0 {
				return
			}
			if diff := cmp.Diff(tc.out, got); diff != "" {
				t.Errorf("endgame (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoom(t *testing.T) {
	const pl = 256 << 10
	for _, tc := range []struct {
		name     string
		sent     int64
		measured bool
		want     int
	}{
		{"not measured yet: suggestBytes", 0, false, suggestBytes / pl},
		{"nothing sent lately: the pipeline's worth", 0, true, suggestMin},
		{"a slow node: the pipeline's worth", 40 << 10, true, suggestMin},
		{"a piece a look: suggestLooks pieces", pl, true, suggestLooks},
		{"a fast node: at most MaxSuggest", 100 * pl, true, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := room(tc.sent, tc.measured, pl); got != tc.want {
				t.Errorf("room(%d, %v) = %d, want %d", tc.sent, tc.measured, got, tc.want)
			}
		})
	}
}

// A connected peer's pieces count towards the rest only when Booted
// vouches for its address: a host that connects and claims every piece
// (here a real complete peer, on loopback) holds nothing for the seeder's
// rest unless it booted.
func TestLookCountsBootedPeersOnly(t *testing.T) {
	const pieceLen = 256 << 10
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 16*pieceLen, pieceLen)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The peer that claims every piece sends slowly: the torrent looked
	// at stays incomplete and connected to it.
	pcfg := swarm.Config(0, discard)
	pcfg.UploadRateLimiter = rate.NewLimiter(16<<10, 256<<10)
	peer := swarmtest.Client(t, pcfg)
	swarmtest.Add(t, peer, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})
	cl := swarmtest.Client(t, swarm.Config(0, discard))
	tor := swarmtest.Add(t, cl, ib, ih, &piecestore.File{Path: filepath.Join(t.TempDir(), "cache")})
	tor.DownloadAll()
	tor.AddPeers([]torrent.PeerInfo{{Addr: peer.ListenAddrs()[0].(*net.TCPAddr), Trusted: true}})
	n := tor.NumPieces()
	var asked []netip.Addr
	for _, tc := range []struct {
		booted bool
		want   int
	}{{false, 0}, {true, 1}} {
		booted := func(a netip.Addr) bool { asked = append(asked, a); return tc.booted }
		deadline := time.Now().Add(30 * time.Second)
		for {
			var w watcher
			v := look(tor, 0, booted, nil, &w, time.Now())
			full := len(v.peers) == 1 && v.peers[0].PeerPieces().GetCardinality() == uint64(n)
			if full {
				for i, h := range v.holders {
					if h != tc.want {
						t.Errorf("booted %v: piece %d held by %d, want %d", tc.booted, i, h, tc.want)
						break
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30 s: %d peers connected, none announced every piece", len(v.peers))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(asked) == 0 || !asked[0].IsLoopback() {
		t.Errorf("Booted was asked about %v, want the peer's loopback address", asked)
	}
}

// A peer whose connection closed counts towards the rest for goneFor, but
// only while the tracker lists it: one that announced it stopped holds
// nothing (a node that left must not let the seeder pause while a booting
// node still lacks pieces).
func TestLookCountsGonePeersWhileListed(t *testing.T) {
	const pieceLen = 256 << 10
	path, _, ib, ih := swarmtest.Image(t, t.TempDir(), 4*pieceLen, pieceLen)
	cl := swarmtest.Client(t, swarm.Config(0, slog.New(slog.NewTextHandler(io.Discard, nil))))
	tor := swarmtest.Add(t, cl, ib, ih, &piecestore.File{Path: path, ReadOnly: true, Trusted: true})
	id := [20]byte{'-', 'G', 'T'}
	all := []uint64{0b1111}
	now := time.Now()
	for _, tc := range []struct {
		name   string
		listed func([20]byte) bool
		after  time.Duration
		want   int
	}{
		{"no tracker", nil, time.Second, 1},
		{"listed", func(got [20]byte) bool { return got == id }, time.Second, 1},
		{"stopped", func([20]byte) bool { return false }, time.Second, 0},
		{"listed, past goneFor", func([20]byte) bool { return true }, goneFor, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := watcher{conns: map[*torrent.PeerConn]peerWatch{}, gone: map[[20]byte]gonePeer{id: {pieces: all, at: now}}}
			v := look(tor, 0, nil, tc.listed, &w, now.Add(tc.after))
			want := []int{tc.want, tc.want, tc.want, tc.want}
			if !slices.Equal(v.holders, want) {
				t.Errorf("holders %v, want %v", v.holders, want)
			}
			if _, kept := w.gone[id]; kept != (tc.want == 1) {
				t.Errorf("gone peer kept %v, want %v", kept, tc.want == 1)
			}
		})
	}
}
