package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"moobi/inventory"
	"moobi/nodes"
	"moobi/power"
	"moobi/power/poller"
	"moobi/rollout"
)

// stateBMC answers power status with a state, or fails with err.
type stateBMC struct {
	state power.State
	err   error
}

func (b stateBMC) Status(context.Context) (power.State, error) { return b.state, b.err }
func (stateBMC) On(context.Context) error                      { return errors.New("not polled") }
func (stateBMC) Off(context.Context) error                     { return errors.New("not polled") }
func (stateBMC) Cycle(context.Context) error                   { return errors.New("not polled") }
func (stateBMC) PXE(context.Context) error                     { return errors.New("not polled") }

// TestNodesPowerView polls three BMC hosts through a real poller with fake
// BMCs and checks what /v1/nodes, /v1/nodes/{mac} and /v1/stream say of
// their power: the state, a failing BMC's kind of error, nothing for the
// host without a BMC, and never the BMC's password, user or address.
func TestNodesPowerView(t *testing.T) {
	dir := t.TempDir()
	const secret = "hunter2-bmc-password"
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("kernel"), 0o644)
	if err := os.WriteFile(filepath.Join(dir, "bmc.pw"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bmc := func(addr string) string {
		return "    bmc:\n      type: ipmi\n      address: " + addr + "\n      user: bmc-operator\n      password_file: bmc.pw\n"
	}
	inv, err := inventory.Parse(filepath.Join(dir, "hosts.yaml"), []byte(`appliance:
  interface: lo
profiles:
  rescue:
    kernel: vmlinuz
hosts:
  n1:
    mac: 52:54:00:12:34:01
    profile: rescue
`+bmc("10.9.0.1")+`  n2:
    mac: 52:54:00:12:34:02
    profile: rescue
`+bmc("10.9.0.2")+`  n3:
    mac: 52:54:00:12:34:03
    profile: rescue
`+bmc("10.9.0.3")+`  plain:
    mac: 52:54:00:12:34:04
    profile: rescue
`))
	if err != nil {
		t.Fatal(err)
	}
	bmcs := map[string]stateBMC{
		"10.9.0.1": {state: power.On},
		"10.9.0.2": {state: power.Off},
		"10.9.0.3": {err: power.ErrUnreachable},
	}
	p := &poller.Poller{
		Inventory: func() *inventory.Inventory { return inv },
		Open:      func(b *inventory.BMC) (power.Controller, error) { return bmcs[b.Address], nil },
	}
	s := &Server{
		Inventory:   func() *inventory.Inventory { return inv },
		BaseURL:     func() string { return "http://127.0.0.1" },
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Nodes:       nodes.New(),
		PowerStates: p.Readings,
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	list := func() (map[string]*power.Reading, string) {
		t.Helper()
		resp, body := get(t, srv.URL+"/v1/nodes")
		if resp.StatusCode != 200 {
			t.Fatalf("/v1/nodes: %s", resp.Status)
		}
		var ns []nodes.Node
		if err := json.Unmarshal(body, &ns); err != nil {
			t.Fatal(err)
		}
		out := map[string]*power.Reading{}
		for _, n := range ns {
			out[n.Name] = n.Power
		}
		return out, string(body)
	}
	// Before the first round: unknown, never checked.
	got, _ := list()
	if got["n1"] == nil || got["n1"].State != power.Unknown || !got["n1"].Checked.IsZero() {
		t.Errorf("n1 before polling: %+v", got["n1"])
	}
	if got["plain"] != nil {
		t.Errorf("a host without a BMC has a power reading: %+v", got["plain"])
	}

	before := time.Now()
	p.Poll(context.Background())
	got, body := list()
	for name, want := range map[string]power.State{"n1": power.On, "n2": power.Off, "n3": power.Unknown} {
		r := got[name]
		if r == nil || r.State != want {
			t.Errorf("%s: power %+v, want %s", name, r, want)
		}
	}
	if r := got["n1"]; r != nil && r.Checked.Before(before) {
		t.Errorf("n1 checked at %v, before the poll", r.Checked)
	}
	if r := got["n3"]; r == nil || r.Error != "unreachable" || r.ErrorTime.Before(before) || !r.Checked.IsZero() {
		t.Errorf("n3 (BMC silent): %+v, want the error kind unreachable, its time, never checked", r)
	}
	if got["plain"] != nil {
		t.Errorf("a host without a BMC has a power reading: %+v", got["plain"])
	}
	for _, leak := range []string{secret, "bmc-operator", "10.9.0.", "bmc.pw"} {
		if strings.Contains(body, leak) {
			t.Errorf("/v1/nodes shows %q:\n%s", leak, body)
		}
	}
	_, one := get(t, srv.URL+"/v1/nodes/52:54:00:12:34:02")
	var n nodes.Node
	if err := json.Unmarshal(one, &n); err != nil || n.Power == nil || n.Power.State != power.Off {
		t.Errorf("/v1/nodes/{mac} of n2: %s (%v)", one, err)
	}

	// The stream sends the readings as a "power" event, and again when one changes.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := streamEvents(t, ctx, srv.URL)
	nextPower := func() map[string]power.Reading {
		t.Helper()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatal("stream ended")
				}
				if e[0] != "power" {
					continue
				}
				var m map[string]power.Reading
				if err := json.Unmarshal([]byte(e[1]), &m); err != nil {
					t.Fatalf("power event: %v: %s", err, e[1])
				}
				return m
			case <-ctx.Done():
				t.Fatal("no power event")
			}
		}
	}
	if m := nextPower(); m["n1"].State != power.On || m["n2"].State != power.Off || len(m) != 3 {
		t.Errorf("first power event: %+v", m)
	}
	bmcs["10.9.0.2"] = stateBMC{state: power.On}
	p.Poll(context.Background())
	if m := nextPower(); m["n2"].State != power.On {
		t.Errorf("power event after n2 went on: %+v", m)
	}
}

// streamEvents follows base's /v1/stream until ctx ends and delivers its
// events as (name, data) pairs.
func streamEvents(t *testing.T, ctx context.Context, base string) <-chan [2]string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	events := make(chan [2]string, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				ev = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				select {
				case events <- [2]string{ev, v}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return events
}

// listedRollouts is a Rollouts that lists what the test sets.
type listedRollouts struct {
	mu sync.Mutex
	rs []rollout.Rollout
}

func (l *listedRollouts) set(rs ...rollout.Rollout) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rs = rs
}

func (l *listedRollouts) List() []rollout.Rollout {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]rollout.Rollout(nil), l.rs...)
}
func (l *listedRollouts) Get(string) (rollout.Rollout, error) {
	return rollout.Rollout{}, rollout.ErrNotFound
}
func (l *listedRollouts) Start(rollout.Request) (rollout.Rollout, error) {
	return rollout.Rollout{}, errors.New("read-only")
}
func (l *listedRollouts) Control(string, func(rollout.Rollout, time.Time) (rollout.Rollout, error)) (rollout.Rollout, error) {
	return rollout.Rollout{}, errors.New("read-only")
}
func (l *listedRollouts) Pin(string) (rollout.Pin, bool) { return rollout.Pin{}, false }
func (l *listedRollouts) PinList() []rollout.HostPin     { return nil }
func (l *listedRollouts) Unpin(rollout.UnpinRequest) ([]rollout.HostPin, error) {
	return nil, errors.New("read-only")
}

// TestStreamRollouts checks the stream's rollouts event: GET
// /v1/rollouts's JSON at the start (an empty list, not null), and again
// when a rollout changes, and not while nothing changes.
func TestStreamRollouts(t *testing.T) {
	s := nodeServer(t)
	ro := &listedRollouts{}
	s.Rollouts = ro
	s.Admin = func(h http.Handler) http.Handler { return h } // no writes here
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := streamEvents(t, ctx, srv.URL)
	next := func() (RolloutList, string) {
		t.Helper()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatal("stream ended")
				}
				if e[0] != "rollouts" {
					continue
				}
				var l RolloutList
				if err := json.Unmarshal([]byte(e[1]), &l); err != nil {
					t.Fatalf("rollouts event: %v: %s", err, e[1])
				}
				return l, e[1]
			case <-ctx.Done():
				t.Fatal("no rollouts event")
			}
		}
	}
	if l, raw := next(); raw != `{"rollouts":[]}` || len(l.Rollouts) != 0 {
		t.Errorf("first rollouts event: %s", raw)
	}
	r := rollout.Rollout{ID: "web-1", Image: "web", Version: "v2", State: rollout.Running,
		Batches: []rollout.Batch{{Index: 0, State: rollout.BatchActive, Hosts: []rollout.Host{{Name: "n1", State: rollout.Booting}}}}}
	ro.set(r)
	if l, raw := next(); len(l.Rollouts) != 1 || l.Rollouts[0].Batches[0].Hosts[0].State != rollout.Booting {
		t.Errorf("after a rollout started: %s", raw)
	}
	r.Batches[0].Hosts[0].State = rollout.HostRunning
	r.State = rollout.Succeeded
	ro.set(r.Clone())
	l, raw := next()
	if len(l.Rollouts) != 1 || l.Rollouts[0].State != rollout.Succeeded || l.Rollouts[0].Batches[0].Hosts[0].State != rollout.HostRunning {
		t.Errorf("after the rollout succeeded: %s", raw)
	}
	// Nothing changes: no more rollouts events (the stream looks every second).
	select {
	case e := <-events:
		if e[0] == "rollouts" {
			t.Errorf("a rollouts event with nothing changed: %s", e[1])
		}
	case <-time.After(2500 * time.Millisecond):
	}
}
