package rollout

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnpin(t *testing.T) {
	pins := map[string]Pin{
		"a": {Image: "web", Version: "v1"},
		"b": {Image: "web", Version: "v2", Rollout: "web-1"},
		"c": {Image: "web", Version: "v2", Rollout: "web-2"},
	}
	rollouts := map[string]Rollout{
		"web-1": func() Rollout { r := mk(0, []string{"b"}); r.ID, r.State = "web-1", Succeeded; return r }(),
		"web-2": func() Rollout { r := mk(0, []string{"c", "d"}); r.ID, r.State = "web-2", Paused; return r }(),
	}
	tests := []struct {
		name     string
		req      UnpinRequest
		want     []string
		conflict bool
		errWith  string
	}{
		{name: "hosts, once each, in order", req: UnpinRequest{Hosts: []string{"b", "a", "b"}}, want: []string{"a", "b"}},
		{name: "nothing named", req: UnpinRequest{}, errWith: "name the hosts to unpin, or all"},
		{name: "hosts and all", req: UnpinRequest{Hosts: []string{"a"}, All: true}, errWith: "not both"},
		{name: "a host without a pin", req: UnpinRequest{Hosts: []string{"a", "zz", "yy"}}, errWith: "no pin for zz, yy"},
		{name: "a host of a paused rollout", req: UnpinRequest{Hosts: []string{"a", "c"}}, conflict: true, errWith: "c (rollout web-2, paused)"},
		{name: "all, with a host of a paused rollout", req: UnpinRequest{All: true}, conflict: true, errWith: "c (rollout web-2, paused)"},
	}
	for _, tc := range tests {
		got, err := Unpin(tc.req, pins, rollouts)
		if tc.errWith == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: hosts (-want +got):\n%s", tc.name, diff)
			}
			continue
		}
		var ce *ConflictError
		var re *RequestError
		if err == nil || !strings.Contains(err.Error(), tc.errWith) || errors.As(err, &ce) != tc.conflict || errors.As(err, &re) == tc.conflict || got != nil {
			t.Errorf("%s: %v %v, want a (conflict %v) error with %q and no hosts", tc.name, got, err, tc.conflict, tc.errWith)
		}
	}
	delete(rollouts, "web-2")
	if got, err := Unpin(UnpinRequest{All: true}, pins, rollouts); err != nil || strings.Join(got, ",") != "a,b,c" {
		t.Errorf("all: %v %v", got, err)
	}
}

// Pins are listed and cleared through the runner; a clear whose save
// fails removes nothing.
func TestRunnerUnpin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, FileName)
	site := &fakeSite{now: t0, obs: env().Observed, current: "v1", fail: map[string]bool{}}
	m := newSite(t, path, site)
	r := runToSuccess(t, m, site) // r1-n1 on v2, made current; the others held on v1
	if r.CurrentPending {
		t.Fatalf("pending: %s", r.Reason)
	}
	list := m.PinList()
	if len(list) != 4 || list[0].Host != "r1-n2" || list[0].Version != "v1" || list[0].Rollout != r.ID {
		t.Fatalf("pins %+v; want r1-n2, r1-n3, r2-n1, r2-n2 held on v1 by %s", list, r.ID)
	}
	mend := breakDir(t, dir)
	if _, err := m.Unpin(UnpinRequest{Hosts: []string{"r1-n2"}}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("unpin with the state file unwritable: %v, want an error naming %s", err, path)
	}
	if _, ok := m.Pin("r1-n2"); !ok {
		t.Error("a failed unpin removed the pin")
	}
	mend()
	got, err := m.Unpin(UnpinRequest{Hosts: []string{"r2-n1", "r1-n2"}})
	if err != nil || len(got) != 2 || got[0].Host != "r1-n2" || got[1].Host != "r2-n1" {
		t.Fatalf("unpin: %+v %v", got, err)
	}
	if f, _ := Load(path); len(f.Pins) != 2 {
		t.Errorf("state file pins %v, want r1-n3 and r2-n2", f.Pins)
	}
	if got, err := m.Unpin(UnpinRequest{All: true}); err != nil || len(got) != 2 || len(m.PinList()) != 0 {
		t.Errorf("unpin all: %+v %v, left %v", got, err, m.PinList())
	}
}
