package seeder

import "testing"

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
