package swarm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSuggestRoundTrip(t *testing.T) {
	for _, sg := range []Suggestion{
		{Pieces: []int{}},
		{Pieces: []int{}, Only: true},
		{Pieces: []int{0}},
		{Pieces: []int{7, 3, 1024}, Only: true},
		{Pieces: make([]int, MaxSuggest)},
	} {
		got, err := DecodeSuggest(EncodeSuggest(sg), 1025)
		if err != nil {
			t.Fatalf("DecodeSuggest(EncodeSuggest(%v)): %v", sg, err)
		}
		if diff := cmp.Diff(sg, got); diff != "" {
			t.Errorf("round trip of %v (-sent +decoded):\n%s", sg, diff)
		}
	}
}

func TestDecodeSuggestRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		pieces  int
		want    string
	}{
		{"nothing", nil, 10, "no flags byte"},
		{"an unknown flag", []byte{0x81}, 10, "unknown bits 0x80"},
		{"a broken index", []byte{0, 0, 0, 1}, 10, "not a whole number"},
		{"a piece past the end", EncodeSuggest(Suggestion{Pieces: []int{2, 10}}), 10, "entry 1: piece 10 of a torrent of 10 pieces"},
		{"an index above 2^31", []byte{0, 0xff, 0xff, 0xff, 0xff}, 10, "piece 4294967295"},
		{"too many", EncodeSuggest(Suggestion{Pieces: make([]int, MaxSuggest+1)}), 10, "more than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeSuggest(tc.payload, tc.pieces)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeSuggest(%x, %d) = %v, %v; want an error with %q", tc.payload, tc.pieces, got, err, tc.want)
			}
		})
	}
}

func FuzzDecodeSuggest(f *testing.F) {
	f.Add(EncodeSuggest(Suggestion{Pieces: []int{1, 2, 3}, Only: true}), 4)
	f.Add([]byte{1, 2, 3}, 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		sg, err := DecodeSuggest(b, n)
		if err != nil {
			return
		}
		if len(sg.Pieces) > MaxSuggest {
			t.Fatalf("%d pieces accepted, more than %d", len(sg.Pieces), MaxSuggest)
		}
		for _, p := range sg.Pieces {
			if p < 0 || p >= n {
				t.Fatalf("piece %d accepted for a torrent of %d", p, n)
			}
		}
		if again := EncodeSuggest(sg); string(again) != string(b) {
			t.Fatalf("re-encoded %x, got %x", again, b)
		}
	})
}
