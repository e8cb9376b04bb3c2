package httpd

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"moobi/bootserver/adminauth"
	"moobi/inventory"
	"moobi/rollout"
)

// fakeRollouts keeps rollouts in memory and pins node01 to its pin.
type fakeRollouts struct {
	rs   map[string]rollout.Rollout
	pin  *rollout.Pin
	pins map[string]rollout.Pin // what PinList and Unpin see
}

func (f *fakeRollouts) PinList() []rollout.HostPin { return rollout.PinList(f.pins) }

func (f *fakeRollouts) Unpin(req rollout.UnpinRequest) ([]rollout.HostPin, error) {
	hosts, err := rollout.Unpin(req, f.pins, f.rs)
	if err != nil {
		return nil, err
	}
	var out []rollout.HostPin
	for _, h := range hosts {
		out = append(out, rollout.HostPin{Host: h, Pin: f.pins[h]})
		delete(f.pins, h)
	}
	return out, nil
}

func (f *fakeRollouts) List() []rollout.Rollout {
	var out []rollout.Rollout
	for _, r := range f.rs {
		out = append(out, r)
	}
	return out
}

func (f *fakeRollouts) Get(id string) (rollout.Rollout, error) {
	r, ok := f.rs[id]
	if !ok {
		return r, fmt.Errorf("rollout %q: %w", id, rollout.ErrNotFound)
	}
	return r, nil
}

func (f *fakeRollouts) Start(req rollout.Request) (rollout.Rollout, error) {
	switch {
	case req.Image != "web":
		return rollout.Rollout{}, &rollout.RequestError{}
	case req.Targets[0] == "busy":
		return rollout.Rollout{}, &rollout.ConflictError{}
	}
	r := rollout.Rollout{ID: "web-1", Image: req.Image, Version: "v2", State: rollout.Running}
	if req.DryRun {
		r.State = rollout.Planned
		return r, nil
	}
	f.rs[r.ID] = r
	return r, nil
}

func (f *fakeRollouts) Control(id string, c func(rollout.Rollout, time.Time) (rollout.Rollout, error)) (rollout.Rollout, error) {
	r, err := f.Get(id)
	if err != nil {
		return r, err
	}
	if r, err = c(r, time.Now()); err != nil {
		return r, err
	}
	f.rs[id] = r
	return r, nil
}

func (f *fakeRollouts) Pin(string) (rollout.Pin, bool) {
	if f.pin == nil {
		return rollout.Pin{}, false
	}
	return *f.pin, true
}

func TestRolloutEndpoints(t *testing.T) {
	path := t.TempDir() + "/state/admin.token"
	tok, _, err := adminauth.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := adminauth.ReadFile(path)
	var refused []string
	guard := &adminauth.Guard{Token: tok, Refused: func(r string) { refused = append(refused, r) }}
	ro := &fakeRollouts{rs: map[string]rollout.Rollout{}}
	inv := &inventory.Inventory{}
	s := &Server{Inventory: func() *inventory.Inventory { return inv }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Rollouts: ro, Admin: guard.Wrap}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	do := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	start := `{"image":"web","targets":["rack1-*"],"batch_size":2,"batch_timeout":"15m"}`
	for _, c := range []struct{ path, token string }{{"/v1/rollouts", ""}, {"/v1/rollouts", "nope"}, {"/v1/rollouts/web-1/abort", ""}} {
		if code, _ := do("POST", c.path, c.token, start); code != 401 && code != 403 {
			t.Errorf("POST %s with token %q: %d, want 401 or 403", c.path, c.token, code)
		}
	}
	if len(ro.rs) != 0 || strings.Join(refused, ",") != "missing,wrong,missing" {
		t.Fatalf("refused requests started a rollout (%v) or were not counted (%q)", ro.rs, refused)
	}
	tests := []struct {
		method, path, token, body string
		code                      int
		want                      string
	}{
		{"POST", "/v1/rollouts", secret, `{"image":"web","targets":["a"],"dry_run":true}`, 200, `"state":"planned"`},
		{"POST", "/v1/rollouts", secret, start, 201, `"state":"running"`},
		{"POST", "/v1/rollouts", secret, `{"image":"web","targets":["a"],"batch_timeout":"soon"}`, 400, "bad request"},
		{"POST", "/v1/rollouts", secret, `{"image":"web","targets":["a"],"force":true}`, 400, `unknown field "force"`},
		{"POST", "/v1/rollouts", secret, `{"image":"db","targets":["a"]}`, 400, "bad request"},
		{"POST", "/v1/rollouts", secret, `{"image":"web","targets":["busy"]}`, 409, "conflict"},
		{"GET", "/v1/rollouts", "", "", 200, `"rollouts":[{"id":"web-1"`},
		{"GET", "/v1/rollouts/web-1", "", "", 200, `"id":"web-1"`},
		{"GET", "/v1/rollouts/nope", "", "", 404, "no such rollout"},
		{"POST", "/v1/rollouts/web-1/pause", secret, "", 200, `"state":"paused"`},
		{"POST", "/v1/rollouts/web-1/pause", secret, "", 409, "it is paused"},
		{"POST", "/v1/rollouts/web-1/resume", secret, "", 200, `"state":"running"`},
		{"POST", "/v1/rollouts/web-1/abort", secret, "", 200, `"state":"aborted"`},
		{"POST", "/v1/rollouts/nope/abort", secret, "", 404, "no such rollout"},
	}
	for _, tc := range tests {
		code, body := do(tc.method, tc.path, tc.token, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %q, want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	var list RolloutList
	if code, body := do("GET", "/v1/rollouts", "", ""); code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Rollouts) != 1 {
		t.Errorf("list: %d %q", code, body)
	}
}

// With read_auth token the reads need the admin token; with the views on
// admin_listen, the boot network's port answers them to the admin token.
func TestRolloutReads(t *testing.T) {
	path := t.TempDir() + "/state/admin.token"
	tok, _, _ := adminauth.LoadOrCreate(path)
	secret, _ := adminauth.ReadFile(path)
	guard := &adminauth.Guard{Token: tok}
	for _, elsewhere := range []bool{false, true} {
		s := &Server{Inventory: func() *inventory.Inventory { return &inventory.Inventory{} }, Log: slog.New(slog.DiscardHandler),
			Rollouts: &fakeRollouts{rs: map[string]rollout.Rollout{}}, Admin: guard.Wrap, ReadAuth: guard.Wrap, AdminElsewhere: elsewhere}
		for _, c := range []struct {
			token string
			code  int
		}{{"", 401}, {secret, 200}} {
			req := httptest.NewRequest("GET", "/v1/rollouts", nil)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code != c.code {
				t.Errorf("elsewhere %v, token %q: %d, want %d", elsewhere, c.token, w.Code, c.code)
			}
		}
	}
}

func TestBootVersion(t *testing.T) {
	pin := rollout.Pin{Image: "web", Version: "v1"}
	tests := []struct {
		name, image, asked string
		pin                rollout.Pin
		pinned             bool
		want               string
	}{
		{"no pin: current", "web", "", rollout.Pin{}, false, ""},
		{"pinned", "web", "", pin, true, "v1"},
		{"the script's version first", "web", "v3", pin, true, "v3"},
		{"a pin of another image is ignored", "db", "", pin, true, ""},
	}
	for _, tc := range tests {
		if got := BootVersion(tc.image, tc.asked, tc.pin, tc.pinned); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A pinned host's boot script names its pinned version, not current.
func TestBootScriptFollowsPin(t *testing.T) {
	s, _ := imageServer(t) // v2 is current
	ro := &fakeRollouts{rs: map[string]rollout.Rollout{}}
	s.Rollouts, s.Admin = ro, func(h http.Handler) http.Handler { return h }
	for _, c := range []struct {
		pin  *rollout.Pin
		want string
	}{{nil, "moobi.version=v2"}, {&rollout.Pin{Image: "web", Version: "v1"}, "moobi.version=v1"}, {&rollout.Pin{Image: "web", Version: "v0"}, "moobi.version=v2"}} {
		ro.pin = c.pin
		w := from(s.Handler(), "GET", "10.0.0.5", "/boot/52:54:00:12:34:01.ipxe", "", "")
		if w.Code != 200 || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("pin %+v: %d, script without %q:\n%s", c.pin, w.Code, c.want, w.Body)
		}
	}
}

// GET /v1/pins lists the pins; POST /v1/pins/unpin needs the admin token
// and refuses unknown hosts and hosts of an active rollout.
func TestPinEndpoints(t *testing.T) {
	path := t.TempDir() + "/state/admin.token"
	tok, _, _ := adminauth.LoadOrCreate(path)
	secret, _ := adminauth.ReadFile(path)
	guard := &adminauth.Guard{Token: tok}
	active := rollout.Rollout{ID: "web-2", State: rollout.Paused, Batches: []rollout.Batch{{Hosts: []rollout.Host{{Name: "c"}}}}}
	ro := &fakeRollouts{rs: map[string]rollout.Rollout{"web-2": active}, pins: map[string]rollout.Pin{
		"a": {Image: "web", Version: "v1", Rollout: "web-1"}, "b": {Image: "web", Version: "v2"}, "c": {Image: "web", Version: "v2", Rollout: "web-2"}}}
	s := &Server{Inventory: func() *inventory.Inventory { return &inventory.Inventory{} }, Log: slog.New(slog.DiscardHandler), Rollouts: ro, Admin: guard.Wrap}
	tests := []struct {
		method, path, token, body string
		code                      int
		want                      string
	}{
		{"GET", "/v1/pins", "", "", 200, `{"pins":[{"host":"a","image":"web","version":"v1","rollout":"web-1"`},
		{"POST", "/v1/pins/unpin", "", `{"hosts":["a"]}`, 401, ""},
		{"POST", "/v1/pins/unpin", "nope", `{"hosts":["a"]}`, 403, ""},
		{"POST", "/v1/pins/unpin", secret, `{"host":"a"}`, 400, `unknown field "host"`},
		{"POST", "/v1/pins/unpin", secret, `{"hosts":["zz"]}`, 400, "no pin for zz"},
		{"POST", "/v1/pins/unpin", secret, `{"hosts":["a","c"]}`, 409, "c (rollout web-2, paused)"},
		{"POST", "/v1/pins/unpin", secret, `{"all":true}`, 409, "c (rollout web-2, paused)"},
		{"POST", "/v1/pins/unpin", secret, `{"hosts":["a"]}`, 200, `{"unpinned":[{"host":"a"`},
		{"GET", "/v1/pins", "", "", 200, `{"pins":[{"host":"b"`},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s %s %s: %d %q, want %d with %q", tc.method, tc.path, tc.body, w.Code, w.Body, tc.code, tc.want)
		}
	}
	if len(ro.pins) != 2 {
		t.Errorf("pins left %v, want b and c", ro.pins)
	}
}
