package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"moobi/bootserver/adminauth"
	"moobi/inventory"
	"moobi/power"
	"moobi/power/fleet"
)

// fakeRunner answers every host it is asked for as on.
type fakeRunner struct{ calls []string }

func (f *fakeRunner) Run(_ context.Context, a power.Action, targets []string) ([]fleet.Result, error) {
	f.calls = append(f.calls, string(a)+" "+strings.Join(targets, ","))
	return []fleet.Result{{Host: "n1", Action: a, State: power.On, OK: true}, {Host: "n2", Action: a, State: power.Unknown, Error: "x", Kind: "auth"}}, nil
}

func TestPowerEndpoints(t *testing.T) {
	path := t.TempDir() + "/state/admin.token"
	tok, _, err := adminauth.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := adminauth.ReadFile(path)
	var refused []string
	guard := &adminauth.Guard{Token: tok, Refused: func(r string) { refused = append(refused, r) }}
	run := &fakeRunner{}
	inv := &inventory.Inventory{Hosts: map[string]*inventory.Host{"n1": {Name: "n1", BMC: &inventory.BMC{Type: "ipmi"}}}}
	s := &Server{Inventory: func() *inventory.Inventory { return inv }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Power: run, Admin: guard.Wrap}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	do := func(method, token, body string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+"/v1/power", strings.NewReader(body))
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
	if code, _ := do("POST", "", `{"action":"off","targets":["all"]}`); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := do("GET", "nope", ""); code != 403 {
		t.Errorf("wrong token: %d, want 403", code)
	}
	if len(run.calls) != 0 || strings.Join(refused, ",") != "missing,wrong" {
		t.Fatalf("refused requests reached the runner (%q) or were not counted (%q)", run.calls, refused)
	}
	if code, body := do("POST", secret, `{"action":"reboot","targets":["all"]}`); code != 400 || !strings.Contains(body, `unknown power action "reboot"`) {
		t.Errorf("bad action: %d %q", code, body)
	}
	if code, body := do("POST", secret, `{"action":"off","targets":["all"],"password":"x"}`); code != 400 || !strings.Contains(body, `unknown field "password"`) {
		t.Errorf("unknown field: %d %q", code, body)
	}
	code, body := do("POST", secret, `{"action":"pxe","targets":["rack1-*"]}`)
	var out PowerResponse
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil || out.OK != 1 || out.Failed != 1 || len(out.Results) != 2 {
		t.Errorf("pxe: %d %q", code, body)
	}
	if code, _ := do("GET", secret, ""); code != 200 {
		t.Errorf("GET: %d", code)
	}
	if got := strings.Join(run.calls, "; "); got != "pxe rack1-*; status all" {
		t.Errorf("runner calls %q", got)
	}
}

// errRunner fails every run with err.
type errRunner struct{ err error }

func (e errRunner) Run(context.Context, power.Action, []string) ([]fleet.Result, error) {
	return nil, e.err
}

// TestPowerErrors checks each way a run can fail gets its own status and
// message: targets naming no host are the request's fault, the rest not.
func TestPowerErrors(t *testing.T) {
	inv := &inventory.Inventory{Hosts: map[string]*inventory.Host{"n1": {Name: "n1", BMC: &inventory.BMC{Type: "ipmi"}}}}
	for _, tc := range []struct {
		name   string
		runner PowerRunner
		code   int
		prefix string
	}{
		{"unknown host", &fleet.Runner{Inventory: func() *inventory.Inventory { return inv }}, 400,
			`bad request: target "n9": no such host in hosts.yaml`},
		{"request ended", errRunner{context.Canceled}, 503, "power action not done: the request ended first: context canceled"},
		{"internal", errRunner{errors.New("no BMC driver")}, 500, "power action failed: no BMC driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{Inventory: func() *inventory.Inventory { return inv }, Log: slog.New(slog.DiscardHandler), Power: tc.runner,
				Admin: func(h http.Handler) http.Handler { return h }}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/power", strings.NewReader(`{"action":"off","targets":["n9"]}`)))
			if body := rec.Body.String(); rec.Code != tc.code || !strings.HasPrefix(body, tc.prefix) {
				t.Errorf("got %d %q, want %d %q...", rec.Code, body, tc.code, tc.prefix)
			}
		})
	}
}
