package swarm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSuggestRoundTrip(t *testing.T) {
	for _, pieces := range [][]int{{}, {0}, {7, 3, 1024}, make([]int, MaxSuggest)} {
		got, err := DecodeSuggest(EncodeSuggest(pieces), 1025)
		if err != nil {
			t.Fatalf("DecodeSuggest(EncodeSuggest(%v)): %v", pieces, err)
		}
		if diff := cmp.Diff(pieces, got); diff != "" {
			t.Errorf("round trip of %v (-sent +decoded):\n%s", pieces, diff)
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
		{"a broken index", []byte{0, 0, 1}, 10, "not a whole number"},
		{"a piece past the end", EncodeSuggest([]int{2, 10}), 10, "entry 1: piece 10 of a torrent of 10 pieces"},
		{"an index above 2^31", []byte{0xff, 0xff, 0xff, 0xff}, 10, "piece 4294967295"},
		{"too many", EncodeSuggest(make([]int, MaxSuggest+1)), 10, "more than 64"},
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
	f.Add(EncodeSuggest([]int{1, 2, 3}), 4)
	f.Add([]byte{1, 2, 3}, 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		pieces, err := DecodeSuggest(b, n)
		if err != nil {
			return
		}
		if len(pieces) > MaxSuggest {
			t.Fatalf("%d pieces accepted, more than %d", len(pieces), MaxSuggest)
		}
		for _, p := range pieces {
			if p < 0 || p >= n {
				t.Fatalf("piece %d accepted for a torrent of %d", p, n)
			}
		}
		if again := EncodeSuggest(pieces); string(again) != string(b) {
			t.Fatalf("re-encoded %x, got %x", again, b)
		}
	})
}
