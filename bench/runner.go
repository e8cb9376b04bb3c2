package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// workload is one measurement, made against each server of its section.
type workload struct {
	section string // dhcp, tftp, http
	key     string
	label   string
	rate    int     // dhcp: DISCOVERs per second, 0 flat out
	cores   float64 // the server is held to this share of a core (0: not held)
	file    string  // tftp, http
	clients int
}

// sample is one run of a workload against one server.
type sample struct {
	rep  int
	load string // the 1-minute load average when the run started
	dhcp dhcpResult
	xfer xferResult
	// serverCPU is the CPU time (user+system) the server's processes
	// used during the run; machineCPU the machine's busy share.
	serverCPU  float64
	machineCPU float64
}

type runner struct {
	c    config
	net  *network
	s    *scratch
	self string // this program, re-run inside the namespaces
	seq  int

	works       []workload
	refs        map[string]string              // section -> reference server name
	samples     map[string]map[string][]sample // workload key -> server -> runs
	profiles    []profileReport
	extra       []extraSection // rack, footprint, boot: reported after the HTTP tables
	info        machineInfo
	notMeasured []string // what this machine could not measure, and why
	labNotes    []string // what a lab changed on this machine while it ran
	started     time.Time
	elapsed     time.Duration
}

func bench(ctx context.Context, c config) (err error) {
	b := &runner{c: c, refs: map[string]string{"dhcp": "dnsmasq", "tftp": "tftpd-hpa", "http": "nginx"},
		samples: map[string]map[string][]sample{}, started: time.Now()}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	b.info = gatherInfo(c)
	fmt.Printf("bench: %s, %d cores, kernel %s; load average at start %s\n", b.info.CPU, b.info.Cores, b.info.Kernel, b.info.LoadStart)

	if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
		return err
	}
	cleanupStale(ctx)
	if b.s, err = newScratch(c); err != nil {
		return fmt.Errorf("scratch files: %w", err)
	}
	defer func() {
		if c.keep || (err != nil && ctx.Err() == nil) {
			fmt.Fprintf(os.Stderr, "bench: logs and configs kept in %s\n", b.s.dir)
		} else {
			os.RemoveAll(b.s.dir)
		}
	}()
	if c.sections["dhcp"] || c.sections["tftp"] || c.sections["http"] {
		if b.net, err = newNetwork(ctx); err != nil {
			return fmt.Errorf("network namespaces: %w", err)
		}
		defer func() {
			if cerr := b.net.Close(); cerr != nil {
				fmt.Fprintln(os.Stderr, "bench: cleanup:", cerr)
			} else {
				fmt.Fprintf(os.Stderr, "bench: namespaces %s and %s deleted\n", b.net.srv, b.net.cli)
			}
		}()
		fmt.Printf("bench: namespaces %s (servers, %s) and %s (clients, %s); scratch %s\n", b.net.srv, srvAddr, b.net.cli, cliAddr, b.s.dir)
	}

	if c.sections["dhcp"] && b.c.dhcpCores > 0 {
		// Without a cgroup CPU controller to write to (a container, say)
		// the held run cannot be made: the rest of the section still can.
		if err := probeCPUCap(b.c.dhcpCores); err != nil {
			b.notMeasured = append(b.notMeasured, fmt.Sprintf("proxy DHCP with the server held to %g of a core: %v", b.c.dhcpCores, err))
			fmt.Printf("bench: no held proxy DHCP run: %v\n", err)
			b.c.dhcpCores = 0
		}
	}
	b.works = b.workloads()
	sections := []struct {
		name    string
		servers []server
		run     func(context.Context, server, workload) (sample, error)
	}{
		{"dhcp", []server{b.moobiServer(c.moobi, "", ""), b.dnsmasqServer()}, b.runDHCP},
		{"tftp", []server{b.moobiServer(c.moobi, "", ""), b.tftpdServer()}, b.runXfer},
		{"http", []server{b.moobiServer(c.moobi, "", ""), b.nginxServer()}, b.runXfer},
	}
	for _, sec := range sections {
		if !c.sections[sec.name] {
			continue
		}
		if err := b.section(ctx, sec.name, sec.servers, sec.run); err != nil {
			return err
		}
		if c.profile != "never" {
			for _, w := range b.profileWorkloads(sec.name) {
				if err := b.profileRun(ctx, w, sec.run); err != nil {
					return fmt.Errorf("profile %s: %w", w.label, err)
				}
			}
		}
	}
	for _, sec := range []struct {
		name string
		run  func(context.Context) (extraSection, error)
	}{{"fulldhcp", b.fullDHCPSection}, {"rack", b.rackSection}, {"footprint", b.footprintSection}, {"boot", b.bootSection}} {
		if !c.sections[sec.name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		x, err := sec.run(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", sec.name, err)
		}
		b.extra = append(b.extra, x)
	}
	b.info.LoadEnd = loadAvg()
	b.elapsed = time.Since(b.started)
	rep := b.report()
	fmt.Println()
	fmt.Print(rep)
	if err := os.WriteFile(c.out, []byte(rep), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nbench: results written to %s\n", c.out)
	return nil
}

func (b *runner) workloads() []workload {
	c := b.c
	ws := []workload{
		{section: "dhcp", key: "dhcp-rate", rate: c.dhcpRate, label: fmt.Sprintf("%s DISCOVER/s for %d s", thousands(c.dhcpRate), c.dhcpSeconds)},
		{section: "dhcp", key: "dhcp-max", rate: 0, label: fmt.Sprintf("flat out (no -r) for %d s", c.dhcpSeconds)},
	}
	if c.dhcpCores > 0 {
		ws = append(ws, workload{section: "dhcp", key: "dhcp-held", rate: 0, cores: c.dhcpCores,
			label: fmt.Sprintf("flat out, the server held to %.2f of a core, for %d s", c.dhcpCores, c.dhcpSeconds)})
	}
	for _, f := range []string{fileIPXE, fileTFTP} {
		for _, n := range c.clients {
			ws = append(ws, workload{section: "tftp", key: fmt.Sprintf("tftp-%s-%d", f, n), file: f, clients: n,
				label: fmt.Sprintf("%s (%s), %d client%s", f, size(b.s.sizes[f]), n, plural(n))})
		}
	}
	for _, f := range []string{fileKernel, fileInitrd} {
		for _, n := range c.clients {
			ws = append(ws, workload{section: "http", key: fmt.Sprintf("http-%s-%d", f, n), file: f, clients: n,
				label: fmt.Sprintf("%s (%s), %d client%s", f, size(b.s.sizes[f]), n, plural(n))})
		}
	}
	return ws
}

func (b *runner) sectionWorks(section string) []workload {
	var out []workload
	for _, w := range b.works {
		if w.section == section {
			out = append(out, w)
		}
	}
	return out
}

// section runs every workload of a section against each server in turn,
// --repeat times, alternating the servers so that a change in the machine's
// background load hits both.
func (b *runner) section(ctx context.Context, name string, servers []server, run func(context.Context, server, workload) (sample, error)) error {
	works := b.sectionWorks(name)
	for rep := 1; rep <= b.c.repeat; rep++ {
		for _, srv := range servers {
			if err := ctx.Err(); err != nil {
				return err
			}
			p, err := srv.start(ctx)
			if err != nil {
				return fmt.Errorf("start %s: %w", srv.name, err)
			}
			for _, w := range works {
				load := strings.Fields(loadAvg())[0]
				cpu0 := groupCPU(p.cmd.Process.Pid)
				busy := startBusyMeter()
				s, err := runHeld(ctx, p, srv, w, run)
				s.serverCPU = groupCPU(p.cmd.Process.Pid) - cpu0
				s.machineCPU = busy.share()
				if err == nil && p.exited() {
					err = fmt.Errorf("%s exited during the run: %v\n%s", srv.name, p.err, p.logTail(20))
				}
				if err != nil {
					p.stop(syscall.SIGKILL)
					return fmt.Errorf("%s, %s, %s: %w", name, w.label, srv.name, err)
				}
				s.rep, s.load = rep, load
				if b.samples[w.key] == nil {
					b.samples[w.key] = map[string][]sample{}
				}
				b.samples[w.key][srv.name] = append(b.samples[w.key][srv.name], s)
				fmt.Printf("bench: %-4s run %d/%d %-10s %-40s %s (load %s)\n", name, rep, b.c.repeat, srv.name, w.label, s.summary(w), load)
			}
			p.stop(srv.stopSig)
		}
	}
	return nil
}

// runHeld runs w against srv, running as p, held to w.cores of a core if
// w says so.
func runHeld(ctx context.Context, p *proc, srv server, w workload, run func(context.Context, server, workload) (sample, error)) (sample, error) {
	if w.cores <= 0 {
		return run(ctx, srv, w)
	}
	held, err := holdCPU(p.cmd.Process.Pid, w.cores)
	if err != nil {
		return sample{}, err
	}
	s, err := run(ctx, srv, w)
	if rerr := held.release(p.cmd.Process.Pid); rerr != nil {
		// Still held, the server keeps its cgroup from going: it is
		// stopped here (the section then ends with the error).
		p.stop(syscall.SIGKILL)
		if err == nil {
			err = rerr
		}
	}
	if rerr := held.remove(); rerr != nil && err == nil {
		err = fmt.Errorf("remove cgroup %s: %w", held.dir, rerr)
	}
	return s, err
}

func (s sample) summary(w workload) string {
	if w.section == "dhcp" {
		r := s.dhcp
		return fmt.Sprintf("sent %d received %d drops %d rate %.0f/s p50 %.3f ms p99 %.3f ms, server CPU %.2f s, perfdhcp CPU %.2f s, machine %.0f%%", r.Sent, r.Received, r.Drops, r.Rate, r.P50, r.P99, s.serverCPU, r.ClientCPU, 100*s.machineCPU)
	}
	r := s.xfer
	return fmt.Sprintf("%d transfers, %d errors, %.1f MB/s, p50 %.1f ms p99 %.1f ms, server CPU %.2f s, machine %.0f%%", r.Transfers, r.Errors, r.MBps, r.P50, r.P99, s.serverCPU, 100*s.machineCPU)
}

func (b *runner) runDHCP(ctx context.Context, srv server, w workload) (sample, error) {
	r, err := b.perfdhcp(ctx, w.rate, b.c.dhcpSeconds, strings.Fields(srv.name)[0]+"-"+w.key)
	if err != nil {
		return sample{}, err
	}
	if r.Received == 0 {
		return sample{}, fmt.Errorf("no answer at all from %s (%d DISCOVERs sent)", srv.name, r.Sent)
	}
	return sample{dhcp: r}, nil
}

func (b *runner) runXfer(ctx context.Context, srv server, w workload) (sample, error) {
	args := []string{"-size", strconv.FormatInt(b.s.sizes[w.file], 10), "-clients", strconv.Itoa(w.clients), "-duration", b.c.duration.String()}
	kind := "http-load"
	if w.section == "tftp" {
		kind = "tftp-load"
		args = append(args, "-addr", srvAddr+":69", "-file", w.file)
	} else {
		args = append(args, "-url", b.httpURL(srv.name, w.file))
	}
	ctx, cancel := context.WithTimeout(ctx, b.c.duration+10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mustLook("ip"), append([]string{"netns", "exec", b.net.cli, b.self, kind}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w: %s", kind, err, strings.TrimSpace(stderr.String()))
	}
	var r xferResult
	if err := json.Unmarshal(out, &r); err != nil {
		return sample{}, fmt.Errorf("%s output %q: %w", kind, out, err)
	}
	if r.Transfers == 0 {
		return sample{}, fmt.Errorf("no transfer completed (%d errors, first: %s)", r.Errors, r.FirstErr)
	}
	return sample{xfer: r}, nil
}

// median is the run reported for a workload and server: the median by the
// workload's main figure (p99 at a fixed DHCP rate, replies per second flat
// out, MB/s for transfers), so that its figures all come from one run.
func (b *runner) median(w workload, server string) (sample, bool) {
	runs := append([]sample(nil), b.samples[w.key][server]...)
	if len(runs) == 0 {
		return sample{}, false
	}
	key := func(s sample) float64 {
		switch {
		case w.key == "dhcp-rate":
			return s.dhcp.P99
		case w.section == "dhcp":
			return s.dhcp.Rate
		}
		return s.xfer.MBps
	}
	sort.SliceStable(runs, func(i, j int) bool { return key(runs[i]) < key(runs[j]) })
	return runs[len(runs)/2], true
}

// extraSection is what a section outside the server-against-server model
// (rack, footprint, boot) reports: its pass/fail lines and its markdown.
type extraSection struct {
	targets  []target
	markdown string // starts with a "## " heading
}

// target is one pass/fail line of the report.
type target struct {
	what        string
	moobi, ref  string
	ratio       string
	pass        bool
	section     string
	workloadKey string
}

const p99TargetMs = 5.0

func (b *runner) targets() []target {
	var ts []target
	for _, w := range b.works {
		if !b.c.sections[w.section] {
			continue
		}
		m, ok1 := b.median(w, "moobi")
		r, ok2 := b.median(w, b.refs[w.section])
		if !ok1 || !ok2 {
			continue
		}
		switch {
		case w.key == "dhcp-rate":
			ts = append(ts, target{
				what:  fmt.Sprintf("proxy DHCP p99 under %.0f ms at %s", p99TargetMs, w.label),
				moobi: fmt.Sprintf("%.2f ms", m.dhcp.P99), ref: fmt.Sprintf("%.2f ms (dnsmasq)", r.dhcp.P99),
				pass: m.dhcp.P99 < p99TargetMs && m.dhcp.Samples > 0, section: "dhcp", workloadKey: w.key,
			})
		case w.key == "dhcp-max" || w.key == "dhcp-held":
			what := "proxy DHCP replies/s flat out ≥ dnsmasq"
			if w.cores > 0 {
				what = fmt.Sprintf("proxy DHCP replies/s flat out, each server held to %.2f of a core, ≥ dnsmasq", w.cores)
			}
			ts = append(ts, target{
				what:  what,
				moobi: fmt.Sprintf("%.0f/s", m.dhcp.Rate), ref: fmt.Sprintf("%.0f/s", r.dhcp.Rate),
				ratio: ratio(m.dhcp.Rate, r.dhcp.Rate), pass: m.dhcp.Rate >= r.dhcp.Rate, section: "dhcp", workloadKey: w.key,
			})
		default:
			ts = append(ts, target{
				what:  fmt.Sprintf("%s %s ≥ 0.9× %s", strings.ToUpper(w.section), w.label, b.refs[w.section]),
				moobi: fmt.Sprintf("%.1f MB/s", m.xfer.MBps), ref: fmt.Sprintf("%.1f MB/s", r.xfer.MBps),
				ratio: ratio(m.xfer.MBps, r.xfer.MBps), pass: m.xfer.MBps >= 0.9*r.xfer.MBps && m.xfer.Errors == 0,
				section: w.section, workloadKey: w.key,
			})
		}
	}
	for _, x := range b.extra {
		ts = append(ts, x.targets...)
	}
	return ts
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f×", a/b)
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%s bytes", thousands(int(n)))
	}
	return fmt.Sprintf("%d bytes", n)
}
