package catalog

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// NoCurrent stages a version (current stays), except the first; Protect
// keeps versions hosts are pinned to through pruning.
func TestStageAndProtect(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := makeSources(t, t.TempDir())
	publish := func(o PublishOptions) {
		t.Helper()
		if _, err := c.Publish(context.Background(), "img", src, o); err != nil {
			t.Fatal(err)
		}
	}
	current := func() string {
		t.Helper()
		m, err := c.Current("img")
		if err != nil {
			t.Fatal(err)
		}
		return m.Version
	}
	publish(PublishOptions{NoCurrent: true})
	if v := current(); v != "v1" {
		t.Fatalf("the first version staged: current %s, want v1", v)
	}
	publish(PublishOptions{NoCurrent: true})
	if v := current(); v != "v1" {
		t.Errorf("a staged v2 became current")
	}
	// v2 is pinned: with keep 1 and v3 current, v2 stays and v1 goes.
	publish(PublishOptions{Keep: 1, Protect: []string{"v2"}})
	imgs, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range imgs[0].Versions {
		got = append(got, m.Version)
	}
	if diff := cmp.Diff([]string{"v2", "v3"}, got); diff != "" || current() != "v3" {
		t.Errorf("versions (-want +got):\n%s; current %s", diff, current())
	}
}
