package dashboard_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"moobi/rollout"
)

// rolloutView is what the page shows of a rollout.
type rolloutView struct {
	State, Text, Progress string
	Batches               []batchView
}

type batchView struct {
	State string
	Hosts []string // "name state"
}

// rolloutExpr reads rollout id's panel, once it shows want (a rollout
// state) and cond (a JavaScript condition over r, the rollout's element).
func rolloutExpr(id, want, cond string) string {
	return fmt.Sprintf(`(() => {
		const r = document.querySelector('#rollouts .rollout[data-id=%q]');
		if (!r || r.dataset.state !== %q || !(%s)) return false;
		return {State: r.dataset.state, Text: r.textContent,
			Progress: r.querySelector('[role=progressbar]').getAttribute('aria-valuenow'),
			Batches: [...r.querySelectorAll('.batch')].map((b) => ({State: b.dataset.state,
				Hosts: [...b.querySelectorAll('.rhost')].map((h) => h.dataset.host + ' ' + h.dataset.state)}))};
	})()`, id, want, cond)
}

// testRolloutPanel starts a rollout of web v2 over rack1-node02 and
// rack1-node03, one host a batch, on the appliance's real rollout runner
// (power and node views stubbed), and follows it in the page: batch 1
// booting while batch 2 waits, batch 1 done and batch 2 booting, then
// rack1-node03's node failing, which stops the rollout (no failure
// allowed), with its reason shown.
func testRolloutPanel(t *testing.T, ctx context.Context, app *browserAppliance, poll func(what, expr string) map[string]any) {
	t.Helper()
	view := func(what, id, state, cond string) rolloutView {
		t.Helper()
		got := poll(what, rolloutExpr(id, state, cond))
		var v rolloutView
		v.State, _ = got["State"].(string)
		v.Text = plain(got["Text"])
		v.Progress, _ = got["Progress"].(string)
		for _, b := range got["Batches"].([]any) {
			bm := b.(map[string]any)
			bv := batchView{State: bm["State"].(string)}
			for _, h := range bm["Hosts"].([]any) {
				bv.Hosts = append(bv.Hosts, h.(string))
			}
			v.Batches = append(v.Batches, bv)
		}
		return v
	}
	poll("the empty rollout panel", `(() => {
		const e = document.getElementById('rollouts-empty');
		return !e.hidden && e.textContent.includes('No rollout yet') && {};
	})()`)
	ro, err := app.Rollouts.Start(rollout.Request{Image: "web", Version: "v2",
		Targets: []string{"rack1-node02", "rack1-node03"}, Options: rollout.Options{BatchSize: 1}})
	if err != nil {
		t.Fatalf("start a rollout: %v", err)
	}
	app.Rollouts.Tick(ctx)

	v := view("batch 1 booting", ro.ID, "running", `r.querySelector('.rhost[data-host="rack1-node02"][data-state="booting"]')`)
	want := []batchView{{"active", []string{"rack1-node02 booting"}}, {"pending", []string{"rack1-node03 waiting"}}}
	if !reflect.DeepEqual(v.Batches, want) {
		t.Errorf("batches with batch 1 booting: %+v, want %+v", v.Batches, want)
	}
	for _, s := range []string{"web → v2", "0 of 2 hosts done", "batch 1 of 2", "1 host a batch", "0 failed, 0 allowed", "1 booting", "1 waiting"} {
		if !strings.Contains(v.Text, s) {
			t.Errorf("rollout panel %q lacks %q", v.Text, s)
		}
	}
	if v.Progress != "0" {
		t.Errorf("progress %s%%, want 0", v.Progress)
	}

	// rack1-node02 runs v2: batch 2 starts.
	app.Seen.set("rack1-node02", running("v2"))
	app.Rollouts.Tick(ctx)
	v = view("batch 2 booting", ro.ID, "running", `r.querySelector('.rhost[data-host="rack1-node03"][data-state="booting"]')`)
	want = []batchView{{"done", []string{"rack1-node02 running"}}, {"active", []string{"rack1-node03 booting"}}}
	if !reflect.DeepEqual(v.Batches, want) {
		t.Errorf("batches with batch 2 booting: %+v, want %+v", v.Batches, want)
	}
	if !strings.Contains(v.Text, "1 of 2 hosts done") || !strings.Contains(v.Text, "batch 2 of 2") || v.Progress != "50" {
		t.Errorf("rollout panel %q, progress %s%%: want 1 of 2 hosts done, batch 2 of 2, 50%%", v.Text, v.Progress)
	}

	// rack1-node03's node fails on v2: with no failure allowed, the
	// rollout stops, and the page says why.
	app.Seen.set("rack1-node03", rollout.Observation{State: "failed", Image: "web", Version: "v2",
		Reason: "image sha256 mismatch", BootStarted: time.Now()})
	app.Rollouts.Tick(ctx)
	v = view("the failed rollout", ro.ID, "failed", "true")
	want = []batchView{{"done", []string{"rack1-node02 running"}}, {v.Batches[1].State, []string{"rack1-node03 failed"}}}
	if !reflect.DeepEqual(v.Batches, want) {
		t.Errorf("batches of the failed rollout: %+v, want %+v", v.Batches, want)
	}
	if !strings.Contains(v.Text, "image sha256 mismatch") || !strings.Contains(v.Text, "1 failed") {
		t.Errorf("failed rollout panel %q: want the node's reason and 1 failed", v.Text)
	}
	app.Cycled.mu.Lock()
	cycled := append([]string(nil), app.Cycled.cycled...)
	app.Cycled.mu.Unlock()
	if !reflect.DeepEqual(cycled, []string{"rack1-node02", "rack1-node03"}) {
		t.Errorf("power-cycled %v, want rack1-node02 then rack1-node03", cycled)
	}
}
