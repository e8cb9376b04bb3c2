package seeder

import (
	"testing"

	"golang.org/x/time/rate"
)

func TestShouldRest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v      restView
		copies int
		want   bool
	}{
		{"every piece held once", restView{holders: []int{1, 2, 1}}, 1, true},
		{"a piece held by nobody", restView{holders: []int{1, 0, 3}}, 1, false},
		{"a piece held once, two copies wanted", restView{holders: []int{2, 1, 2}}, 2, false},
		{"two copies of each", restView{holders: []int{2, 2, 5}}, 2, true},
		{"covered, but a peer is starving", restView{holders: []int{1, 1}, starving: 1}, 1, false},
		{"never rests with copies 0", restView{holders: []int{9, 9}}, 0, false},
		{"no pieces known", restView{}, 1, false},
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
