package nodes

import (
	"container/list"
	"slices"
	"testing"
	"time"
)

// TestInsertByTime: the registry's forget order holds its nodes by update
// time, oldest first, nodes with no update time before all others, nodes
// updated at the same time in the order they came; a node updated again
// goes to the back.
func TestInsertByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	type in struct {
		mac string
		sec int // seconds after t0; -1: no update time
	}
	for _, c := range []struct {
		name string
		in   []in
		want []string
	}{
		{"in time order", []in{{"a", 1}, {"b", 2}, {"c", 3}}, []string{"a", "b", "c"}},
		{"a late one goes back to its place", []in{{"a", 1}, {"c", 3}, {"b", 2}}, []string{"a", "b", "c"}},
		{"older than all", []in{{"b", 2}, {"c", 3}, {"a", 1}}, []string{"a", "b", "c"}},
		{"no update time goes first", []in{{"b", 2}, {"a", -1}, {"c", 3}}, []string{"a", "b", "c"}},
		{"the same time keeps arrival order", []in{{"a", 1}, {"b", 1}, {"c", 1}}, []string{"a", "b", "c"}},
		{"into an empty list", []in{{"a", 5}}, []string{"a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l list.List
			entries := map[string]*entry{}
			for _, n := range c.in {
				e := &entry{Node: Node{MAC: n.mac}}
				if n.sec >= 0 {
					e.Updated = t0.Add(time.Duration(n.sec) * time.Second)
				}
				entries[n.mac] = e
				insertByTime(&l, e)
			}
			if got := macs(&l); !slices.Equal(got, c.want) {
				t.Fatalf("order %q, want %q", got, c.want)
			}
			// The first one updated again, later than all: now last.
			e := entries[c.want[0]]
			removeFrom(&l, e)
			e.Updated = t0.Add(time.Hour)
			insertByTime(&l, e)
			want := append(slices.Clone(c.want[1:]), c.want[0])
			if got := macs(&l); !slices.Equal(got, want) || l.Len() != len(c.in) {
				t.Fatalf("after updating %s: order %q, want %q", e.MAC, got, want)
			}
		})
	}
}

func macs(l *list.List) []string {
	var out []string
	for el := l.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*entry).MAC)
	}
	return out
}
