package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"moobi/lab"
)

// powerRack is a vmRack whose hosts get BMCs in hosts.yaml once the
// appliance runs (the appliance reloads the edit).
type powerRack struct {
	*vmRack
}

// addBMCs adds each host's bmc lines (by name) to hosts.yaml and waits
// until the appliance serves them.
func (r *powerRack) addBMCs(t *testing.T, ctx context.Context, hosts []rackNode, lines map[string]string) {
	t.Helper()
	b, err := os.ReadFile(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, h := range hosts {
		mac := "    mac: " + h.mac + "\n"
		if strings.Count(cfg, mac) != 1 {
			t.Fatalf("hosts.yaml has no single %q", mac)
		}
		cfg = strings.Replace(cfg, mac, mac+"    bmc:\n"+indentLines(lines[h.name], "      "), 1)
	}
	writeFile(t, r.cfg, cfg)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := r.power(ctx, "status", hosts[0].name)
		if !strings.Contains(out, "has no bmc") && !strings.Contains(out, "no such host") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the appliance did not take the BMCs in hosts.yaml:\n%s\n%s", out, lab.Tail(r.app.Log(), 20))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func indentLines(s, pad string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		b.WriteString(pad + strings.TrimSpace(l) + "\n")
	}
	return b.String()
}

// power runs `moobi power ARGS... --config hosts.yaml` in the appliance's
// namespace (the CLI defaults to the appliance on 127.0.0.1 and its admin
// token) and returns its output, exit code and duration.
func (r *powerRack) power(ctx context.Context, args ...string) (string, int, time.Duration) {
	start := time.Now()
	cmd := r.l.Command(ctx, r.bin, append(append([]string{"power"}, args...), "--config", r.cfg)...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return string(out), code, time.Since(start)
}

// powerLine is the line of host in `moobi power` output.
func powerLine(out, host string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, host+" ") {
			return l
		}
	}
	return ""
}

// TestPowerIPMI drives a real BMC simulator (OpenIPMI's ipmi_sim, IPMI
// 2.0 over LAN) that powers a real qemu VM, through `moobi power` and the
// appliance's /v1/power: the admin token is required; off/on/pxe really
// stop and start the VM, pxe netboots it from the appliance to its image;
// ipmitool, the reference client, agrees with `moobi power status`; a
// wrong password and an unreachable BMC each fail their own host with a
// clear error, in bounded time, while the good host in the same command
// succeeds.
func TestPowerIPMI(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs", "ipmi_sim", "ipmitool")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	node := rackNode{"bmc-node01", "52:54:00:b1:00:01", lab.BIOS}
	wrongpw := rackNode{"bmc-wrongpw", "52:54:00:b1:00:02", lab.BIOS}
	gone := rackNode{"bmc-gone", "52:54:00:b1:00:03", lab.BIOS}
	hosts := []rackNode{node, wrongpw, gone}
	r := &powerRack{newVMRack(t, ctx, vmRackOptions{hosts: hosts, imageMiB: 2})}
	l := r.l
	const user, password, port = "admin", "ipmi-s3cret", 9623
	sim, err := l.StartIPMISim(ctx, lab.IPMISimOptions{Name: node.name, Addr: lab.ApplianceAddr, Port: port,
		User: user, Password: password, VM: lab.VMOptions{MAC: node.mac, MemoryMB: 512}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("BMC simulator:\n%s\nVM console:\n%s", lab.Tail(sim.Log(), 30), lab.Tail(sim.VM.Console(), 30))
		}
		sim.Stop()
	})
	pw := filepath.Join(l.Dir(), "bmc.pw")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.Dir(), "wrong.pw"), []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bmc := fmt.Sprintf("type: ipmi\nuser: %s\npassword_file: bmc.pw\naddress: %s:%d", user, lab.ApplianceAddr, port)
	r.addBMCs(t, ctx, hosts, map[string]string{
		node.name:    bmc,
		wrongpw.name: strings.Replace(bmc, "bmc.pw", "wrong.pw", 1),
		gone.name:    strings.Replace(bmc, lab.ApplianceAddr, "10.99.0.250", 1), // nothing there
	})
	ipmitool := func(args ...string) string {
		t.Helper()
		full := append([]string{"-I", "lanplus", "-C", "3", "-H", lab.ApplianceAddr, "-p", fmt.Sprint(port), "-U", user, "-L", "OPERATOR", "-f", pw}, args...)
		out, err := l.Command(ctx, "ipmitool", full...).CombinedOutput()
		if err != nil {
			t.Fatalf("ipmitool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// agree checks that ipmitool and `moobi power status` both see want.
	agree := func(want string) {
		t.Helper()
		if got := ipmitool("chassis", "power", "status"); !strings.Contains(got, "Chassis Power is "+want) {
			t.Fatalf("ipmitool: %q, want power %s", got, want)
		}
		out, code, _ := r.power(ctx, "status", node.name)
		if code != 0 || !regexp.MustCompile(`(?m)^`+node.name+`\s+`+want+`\s.*\sok$`).MatchString(out) {
			t.Fatalf("moobi power status (exit %d), want %s:\n%s", code, want, out)
		}
	}
	waitRunning := func(want bool) {
		t.Helper()
		eventually(t, ctx, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
			return sim.Running() == want, fmt.Sprintf("VM running = %v, want %v", sim.Running(), want)
		})
	}

	// Without the admin token, /v1/power refuses, and says why.
	token, err := os.ReadFile(filepath.Join(l.Dir(), "data", "state", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ header, want string }{
		{"", "401 unauthorized: this endpoint needs the admin token"},
		{"Authorization: Bearer 0123", "403 forbidden: the bearer token is not the admin token"},
	} {
		args := []string{"-sS", "--max-time", "10", "-w", "%{http_code}", "-o", "/dev/stderr", "-X", "POST", "-d", `{"action":"off","targets":["all"]}`}
		if c.header != "" {
			args = append(args, "-H", c.header)
		}
		out, _ := l.Command(ctx, "curl", append(args, r.url("/v1/power"))...).CombinedOutput()
		code, msg, _ := strings.Cut(c.want, " ")
		if !strings.Contains(string(out), msg) || !strings.HasSuffix(strings.TrimSpace(string(out)), code) {
			t.Errorf("POST /v1/power with %q: %q, want %s", c.header, out, c.want)
		}
	}
	metrics, _ := curl(ctx, l, r.url("/metrics"))
	for _, reason := range []string{"missing", "wrong"} {
		if v := metricValue(metrics, `moobi_http_auth_refused_total{reason="`+reason+`"}`); v != 1 {
			t.Errorf("moobi_http_auth_refused_total{reason=%q} = %v, want 1", reason, v)
		}
	}
	if sim.Running() {
		t.Fatal("a refused request powered the VM")
	}
	if strings.TrimSpace(string(token)) == "" {
		t.Fatal("empty admin token")
	}

	// Off at first: the simulator starts the VM only when told.
	agree("off")

	// on: the VM starts, without a network boot (no boot flag).
	if out, code, _ := r.power(ctx, "on", node.name); code != 0 {
		t.Fatalf("moobi power on: exit %d\n%s", code, out)
	}
	waitRunning(true)
	agree("on")
	if all, pxe := sim.Starts(); all != 1 || pxe != 0 {
		t.Fatalf("after power on: %d starts, %d from the network; want 1, 0", all, pxe)
	}

	// pxe: the boot flag is set to PXE for one boot and the VM cycled: it
	// netboots from the appliance into its image.
	start := time.Now()
	if out, code, _ := r.power(ctx, "pxe", node.name); code != 0 {
		t.Fatalf("moobi power pxe: exit %d\n%s", code, out)
	}
	// The BMC powers the VM up again a second after it cut the power.
	eventually(t, ctx, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		all, pxe := sim.Starts()
		return all == 2 && pxe == 1, fmt.Sprintf("after power pxe: %d starts, %d from the network; want 2, 1", all, pxe)
	})
	eventually(t, ctx, 4*time.Minute, 500*time.Millisecond, func() (bool, string) {
		c := sim.VM.Console()
		return strings.Contains(c, lab.ImageMarker+node.name), "VM console:\n" + lab.Tail(c, 10)
	})
	t.Logf("power pxe to the image running: %.1fs", time.Since(start).Seconds())
	waitNodeState(t, ctx, r.vmRack, node.mac, "running", 30*time.Second)
	if got := ipmitool("chassis", "bootparam", "get", "5"); strings.Contains(got, "Force PXE") {
		t.Errorf("the PXE boot flag outlived the boot it was for:\n%s", got)
	}
	agree("on")

	// One command over three hosts: the good one succeeds, the wrong
	// password and the silent BMC fail with their own errors, in bounded time.
	out, code, took := r.power(ctx, "status", "bmc-*")
	t.Logf("moobi power status bmc-* (%.1fs):\n%s", took.Seconds(), out)
	if code != 1 {
		t.Errorf("exit %d with two failed hosts, want 1", code)
	}
	if took > 20*time.Second {
		t.Errorf("took %v with an unreachable BMC; want it bounded (15 s per BMC, run in parallel)", took)
	}
	for host, want := range map[string]string{
		node.name:    `\s+on\s.*\sok$`,
		wrongpw.name: `\s+unknown\s.*\sFAILED \(auth\): .*the BMC refused the user name or password`,
		gone.name:    `\s+unknown\s.*\sFAILED \(unreachable\): .*did not answer`,
	} {
		if line := powerLine(out, host); !regexp.MustCompile(regexp.QuoteMeta(host) + want).MatchString(line) {
			t.Errorf("%s: line %q, want it to match %q", host, line, want)
		}
	}
	if !strings.Contains(out, "power status: 3 hosts, 1 ok, 2 failed") {
		t.Errorf("no summary line in:\n%s", out)
	}
	if strings.Contains(out, password) || strings.Contains(r.app.Log(), password) {
		t.Error("the BMC password shows in the CLI output or the appliance's log")
	}

	// off: the VM stops.
	if out, code, _ := r.power(ctx, "off", node.name); code != 0 {
		t.Fatalf("moobi power off: exit %d\n%s", code, out)
	}
	waitRunning(false)
	agree("off")
}
