package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"moobi/lab"
	"moobi/rollout"
)

// TestRolloutVMs rolls a real image version out to four qemu VMs whose
// power is driven by OpenIPMI's BMC simulator, through `moobi rollout`:
//
//   - all four boot v1 (`moobi power pxe all`); v2 is published without
//     becoming current; a rollout to v2 in batches of 2 ends succeeded
//     with every node running v2, and batch 2's hosts were power-cycled
//     only after batch 1's ran v2; the dashboard, in headless Chromium,
//     shows the rollout's progress live;
//   - a rollout back to v1 resumes after the appliance restarts in its
//     middle, and cycles no host twice;
//   - a rollout to v2 while ro-node01's BMC is unreachable (its simulator
//     stopped: a BMC off the network) and ro-node02 cannot boot from the
//     network (powered, it never comes up) stops, with one failure
//     allowed, at ro-node02's batch timeout, and leaves batch 2 on v1,
//     untouched.
func TestRolloutVMs(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", "ipmi_sim", "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	testStart := time.Now()
	var hosts []rackNode
	for i := 1; i <= 4; i++ {
		hosts = append(hosts, rackNode{fmt.Sprintf("ro-node%02d", i), fmt.Sprintf("52:54:00:b2:00:%02x", i), lab.BIOS})
	}
	// no_timer_check: on a loaded machine the kernel's check of the
	// IO-APIC timer fails under TCG now and then ("IO-APIC + timer doesn't
	// work!"), a panic that has nothing to do with rollouts.
	r := &powerRack{newVMRack(t, ctx, vmRackOptions{hosts: hosts, imageMiB: 2, cmdline: "no_timer_check"})}
	l := r.l
	v1 := r.version
	const user, password = "admin", "rollout-s3cret"
	sims := make([]*lab.IPMISim, len(hosts))
	bmcs := map[string]string{}
	for i, h := range hosts {
		port := 9631 + i
		sim, err := l.StartIPMISim(ctx, lab.IPMISimOptions{Name: h.name, Addr: lab.ApplianceAddr, Port: port,
			User: user, Password: password, VM: lab.VMOptions{MAC: h.mac, MemoryMB: 256}})
		if err != nil {
			t.Fatal(err)
		}
		sims[i] = sim
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s: BMC simulator:\n%s\nVM console:\n%s", h.name, lab.Tail(sim.Log(), 10), lab.Tail(sim.VM.Console(), 15))
			}
			sim.Stop()
		})
		bmcs[h.name] = fmt.Sprintf("type: ipmi\nuser: %s\npassword_file: bmc.pw\naddress: %s:%d", user, lab.ApplianceAddr, port)
	}
	if err := os.WriteFile(filepath.Join(l.Dir(), "bmc.pw"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.addBMCs(t, ctx, hosts, bmcs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("appliance log (tail):\n%s", lab.Tail(r.app.Log(), 40))
		}
	})
	pxeStarts := func() []int {
		out := make([]int, len(sims))
		for i, s := range sims {
			_, out[i] = s.Starts()
		}
		return out
	}
	// onVersion waits until every host of hs runs the web image at version.
	onVersion := func(what string, hs []rackNode, version string, timeout time.Duration) {
		t.Helper()
		eventually(t, ctx, timeout, time.Second, func() (bool, string) {
			ns := getNodes(t, ctx, r.vmRack)
			var off []string
			for _, h := range hs {
				if n := ns[h.mac]; n.State != "running" || n.Version != version {
					off = append(off, fmt.Sprintf("%s %s %s", h.name, n.State, n.Version))
				}
			}
			return len(off) == 0, what + ": not running " + version + ": " + strings.Join(off, ", ")
		})
	}

	// Every host boots v1 from the network.
	start := time.Now()
	if out, code, _ := r.power(ctx, "pxe", "all"); code != 0 {
		t.Fatalf("moobi power pxe all: exit %d\n%s", code, out)
	}
	onVersion("first boot", hosts, v1, 5*time.Minute)
	t.Logf("4 VMs powered on by their BMCs and running %s in %.1fs", v1, time.Since(start).Seconds())

	// v2, staged: published without becoming current.
	img2 := filepath.Join(l.Dir(), "image-v2.squashfs")
	if err := lab.BuildBootImage(img2, 3); err != nil {
		t.Fatal(err)
	}
	v2 := r.publish(t, ctx, img2, "--no-current")
	dash := openDashboard(t, ctx, l)

	// Rollout 1: every host to v2, two at a time.
	start = time.Now()
	id := r.startRollout(t, ctx, "--version", v2, "--batch", "2", "--batch-timeout", "5m", "web", "all")
	// The dashboard shows the rollout while batch 1 boots and batch 2 waits.
	seen := dash.poll(t, "the rollout in progress", fmt.Sprintf(`(() => {
		const r = document.querySelector('#rollouts .rollout[data-id=%q]');
		const b = r && [...r.querySelectorAll('.batch')];
		return b && b.length === 2 && b[0].dataset.state === 'active' && b[1].dataset.state === 'pending' &&
			[...b[1].querySelectorAll('.rhost')].every((h) => h.dataset.state === 'waiting') &&
			{text: r.textContent, state: r.dataset.state};
	})()`, id))
	if seen["state"] != "running" || !strings.Contains(fmt.Sprint(seen["text"]), "web → "+v2) {
		t.Errorf("dashboard during the rollout: %v", seen)
	}
	ro := r.waitRollout(t, ctx, id, 6*time.Minute)
	t.Logf("rollout %s (%s to %s, batches of 2) %s in %.1fs", id, v1, v2, ro.State, time.Since(start).Seconds())
	if ro.State != rollout.Succeeded {
		t.Fatalf("rollout %s: %s (%s), want succeeded\n%s", id, ro.State, ro.Reason, rolloutJSON(ro))
	}
	checkBatchOrder(t, ro, [][]string{{"ro-node01", "ro-node02"}, {"ro-node03", "ro-node04"}})
	onVersion("after the rollout", hosts, v2, 30*time.Second)
	if got := pxeStarts(); !slices.Equal(got, []int{2, 2, 2, 2}) {
		t.Errorf("network boots per VM after the rollout: %v, want 2 each (first boot, rollout)", got)
	}
	done := dash.poll(t, "the finished rollout", fmt.Sprintf(`(() => {
		const r = document.querySelector('#rollouts .rollout[data-id=%q]');
		return r && r.dataset.state === 'succeeded' && {text: r.textContent,
			progress: r.querySelector('[role=progressbar]').getAttribute('aria-valuenow'),
			batches: [...r.querySelectorAll('.batch')].map((b) => b.dataset.state).join(' ')};
	})()`, id))
	if !strings.Contains(fmt.Sprint(done["text"]), "4 of 4 hosts done") || done["progress"] != "100" || done["batches"] != "done done" {
		t.Errorf("dashboard after the rollout: %v", done)
	}

	// Rollout 2: back to v1; the appliance restarts while batch 1 boots.
	start = time.Now()
	id2 := r.startRollout(t, ctx, "--version", v1, "--batch", "2", "--batch-timeout", "5m", "web", "all")
	mid := r.waitRolloutCond(t, ctx, id2, time.Minute, "batch 1 booting", func(ro rollout.Rollout) bool {
		b := ro.Batches[0].Hosts
		return b[0].State == rollout.Booting && b[1].State == rollout.Booting
	})
	if err := r.app.Stop(); err != nil {
		t.Fatalf("stop the appliance: %v", err)
	}
	r.app = startAppliance(t, ctx, l, r.bin, r.cfg)
	t.Logf("appliance restarted %.1fs into rollout %s (batch 1: %s, %s)", time.Since(start).Seconds(), id2,
		mid.Batches[0].Hosts[0].State, mid.Batches[0].Hosts[1].State)
	ro2 := r.waitRollout(t, ctx, id2, 6*time.Minute)
	t.Logf("rollout %s (%s to %s, appliance restarted) %s in %.1fs", id2, v2, v1, ro2.State, time.Since(start).Seconds())
	if ro2.State != rollout.Succeeded {
		t.Fatalf("rollout %s after the restart: %s (%s), want succeeded\n%s", id2, ro2.State, ro2.Reason, rolloutJSON(ro2))
	}
	checkBatchOrder(t, ro2, [][]string{{"ro-node01", "ro-node02"}, {"ro-node03", "ro-node04"}})
	for i, h := range ro2.Batches[0].Hosts {
		if before := mid.Batches[0].Hosts[i].Powered; !h.Powered.Equal(before) {
			t.Errorf("%s powered at %v before the restart, at %v after: cycled again", h.Name, before, h.Powered)
		}
	}
	onVersion("after the restarted rollout", hosts, v1, 30*time.Second)
	if got := pxeStarts(); !slices.Equal(got, []int{3, 3, 3, 3}) {
		t.Errorf("network boots per VM after the restarted rollout: %v, want 3 each (no host cycled twice)", got)
	}

	// Rollout 3: to v2 again, but ro-node01's BMC is off the network and
	// ro-node02 can no longer boot from the network (its BMC powers it,
	// it never comes up). With one failure allowed, ro-node01's is within
	// the budget; ro-node02's, at the batch timeout, is one too many: the
	// rollout stops after batch 1, and batch 2 stays on v1, never
	// power-cycled.
	sims[0].Stop()
	if err := sims[1].BreakNetworkBoot(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	id3 := r.startRollout(t, ctx, "--version", v2, "--batch", "2", "--max-failures", "1", "--batch-timeout", "1m", "web", "all")
	ro3 := r.waitRollout(t, ctx, id3, 4*time.Minute)
	t.Logf("rollout %s with an unreachable BMC and a host that cannot boot: %s in %.1fs: %s", id3, ro3.State, time.Since(start).Seconds(), ro3.Reason)
	if ro3.State != rollout.Failed || !strings.Contains(ro3.Reason, "2 hosts failed, more than max_failures 1") {
		t.Fatalf("rollout %s with ro-node01's BMC gone and ro-node02 unable to boot: %s, want failed\n%s", id3, ro3.State, rolloutJSON(ro3))
	}
	h1 := ro3.Batches[0].Hosts[0]
	if h1.Name != "ro-node01" || h1.State != rollout.HostFailed || !strings.Contains(h1.Reason, "unreachable") {
		t.Errorf("ro-node01 in the failed rollout: %+v, want failed, unreachable", h1)
	}
	h2 := ro3.Batches[0].Hosts[1]
	if h2.Name != "ro-node02" || h2.State != rollout.HostFailed || h2.Powered.IsZero() || !strings.Contains(h2.Reason, "timeout") {
		t.Errorf("ro-node02 in the failed rollout: %+v, want powered, then failed at the batch timeout", h2)
	}
	if all, pxe := sims[1].Starts(); pxe != 3 || all != 4 || !sims[1].Running() {
		t.Errorf("ro-node02 after the failed rollout: %d starts, %d from the network, running %v; want a 4th start, not from the network, still on", all, pxe, sims[1].Running())
	}
	for _, h := range ro3.Batches[1].Hosts {
		if h.State != rollout.Waiting || !h.Powered.IsZero() {
			t.Errorf("%s of batch 2 in the failed rollout: %s, powered %v; want waiting, never powered", h.Name, h.State, h.Powered)
		}
	}
	onVersion("batch 2 after the failed rollout", hosts[2:], v1, 10*time.Second)
	if got := pxeStarts(); got[2] != 3 || got[3] != 3 {
		t.Errorf("network boots of batch 2 after the failed rollout: %v, want 3 (not cycled)", got[2:])
	}
	dash.poll(t, "the failed rollout", fmt.Sprintf(`(() => {
		const r = document.querySelector('#rollouts .rollout[data-id=%q]');
		const h = r && r.querySelector('.rhost[data-host="ro-node01"][data-state="failed"]');
		return h && r.dataset.state === 'failed' && h.textContent.includes('unreachable') && {};
	})()`, id3))
	dash.checkErrors(t)

	// The pins: batch 1 of rollout 3 on v2 (ro-node01 too, pinned before
	// its BMC was asked), batch 2 on v1 from rollout 2. Unpinning
	// ro-node01 puts it back on the image's current version, v1.
	out, code := r.rollout(ctx, "pins")
	t.Logf("moobi rollout pins:\n%s", out)
	for _, p := range []struct{ host, version, id string }{{"ro-node01", v2, id3}, {"ro-node02", v2, id3}, {"ro-node03", v1, id2}, {"ro-node04", v1, id2}} {
		line := `(?m)^` + p.host + ` +web +` + regexp.QuoteMeta(p.version) + ` +` + regexp.QuoteMeta(p.id) + ` +\d`
		if code != 0 || !regexp.MustCompile(line).MatchString(out) {
			t.Errorf("moobi rollout pins: exit %d, no line for %s on %s by %s:\n%s", code, p.host, p.version, p.id, out)
		}
	}
	if out, code := r.rollout(ctx, "unpin", "ro-node01"); code != 0 || !strings.Contains(out, "unpinned ro-node01 (was web "+v2+")") {
		t.Errorf("moobi rollout unpin ro-node01: exit %d\n%s", code, out)
	}
	if out, _ := r.rollout(ctx, "pins"); strings.Contains(out, "ro-node01") || !strings.Contains(out, "ro-node02") {
		t.Errorf("pins after unpinning ro-node01:\n%s", out)
	}
	if script, err := curl(ctx, r.l, r.url("/boot/"+hosts[0].mac+".ipxe")); err != nil || !strings.Contains(script, "moobi.version="+v1) {
		t.Errorf("ro-node01's boot script after the unpin does not name %s (current): %v\n%s", v1, err, script)
	}
	t.Logf("TestRolloutVMs took %.1fs", time.Since(testStart).Seconds())
}

// rollout runs `moobi rollout ARGS... --config hosts.yaml` in the
// appliance's namespace and returns its output and exit code.
func (r *powerRack) rollout(ctx context.Context, args ...string) (string, int) {
	out, err := r.l.Command(ctx, r.bin, append(append([]string{"rollout"}, args...), "--config", r.cfg)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

// startRollout runs `moobi rollout start ARGS...` and returns the
// rollout's ID.
func (r *powerRack) startRollout(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	full := append(append([]string{"rollout", "start"}, args...), "--config", r.cfg)
	out, err := r.l.Command(ctx, r.bin, full...).CombinedOutput()
	if err != nil {
		t.Fatalf("moobi rollout start %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	m := regexp.MustCompile(`rollout (\S+) started`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("moobi rollout start printed no ID:\n%s", out)
	}
	return m[1]
}

// getRollout reads GET /v1/rollouts/ID.
func (r *powerRack) getRollout(t *testing.T, ctx context.Context, id string) (rollout.Rollout, error) {
	var ro rollout.Rollout
	body, err := curl(ctx, r.l, r.url("/v1/rollouts/"+id))
	if err != nil {
		return ro, err
	}
	if err := json.Unmarshal([]byte(body), &ro); err != nil {
		return ro, fmt.Errorf("%w: %s", err, body)
	}
	return ro, nil
}

// waitRolloutCond polls the rollout until cond holds.
func (r *powerRack) waitRolloutCond(t *testing.T, ctx context.Context, id string, timeout time.Duration, what string, cond func(rollout.Rollout) bool) rollout.Rollout {
	t.Helper()
	var ro rollout.Rollout
	eventually(t, ctx, timeout, 500*time.Millisecond, func() (bool, string) {
		var err error
		ro, err = r.getRollout(t, ctx, id)
		return err == nil && len(ro.Batches) > 0 && cond(ro), fmt.Sprintf("rollout %s: want %s: %v\n%s", id, what, err, rolloutJSON(ro))
	})
	return ro
}

// waitRollout waits until the rollout has ended (succeeded, failed or
// aborted).
func (r *powerRack) waitRollout(t *testing.T, ctx context.Context, id string, timeout time.Duration) rollout.Rollout {
	t.Helper()
	return r.waitRolloutCond(t, ctx, id, timeout, "an end", func(ro rollout.Rollout) bool {
		return ro.State == rollout.Succeeded || ro.State == rollout.Failed || ro.State == rollout.Aborted
	})
}

func rolloutJSON(ro rollout.Rollout) string {
	b, _ := json.MarshalIndent(ro, "", "  ")
	return string(b)
}

// checkBatchOrder checks that the rollout's batches hold want's hosts and
// that no host of a batch was powered before every host of the batch
// before it ran the version.
func checkBatchOrder(t *testing.T, ro rollout.Rollout, want [][]string) {
	t.Helper()
	var got [][]string
	for _, b := range ro.Batches {
		var names []string
		for _, h := range b.Hosts {
			names = append(names, h.Name)
		}
		got = append(got, names)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", got, want)
	}
	for i := 1; i < len(ro.Batches); i++ {
		var lastDone time.Time
		for _, h := range ro.Batches[i-1].Hosts {
			if h.State != rollout.HostRunning || h.Done.IsZero() {
				t.Errorf("%s of batch %d: %s, done %v; want running", h.Name, i, h.State, h.Done)
			}
			if h.Done.After(lastDone) {
				lastDone = h.Done
			}
		}
		for _, h := range ro.Batches[i].Hosts {
			if h.Powered.IsZero() || h.Powered.Before(lastDone) {
				t.Errorf("%s of batch %d powered at %v, before batch %d was running (%v)", h.Name, i+1, h.Powered, i, lastDone)
			}
		}
	}
}
