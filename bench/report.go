package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

type machineInfo struct {
	CPU       string
	Cores     int
	Kernel    string
	Memory    string
	LoadStart string
	LoadEnd   string
	Date      string
	Versions  []string
}

func gatherInfo(c config) machineInfo {
	in := machineInfo{CPU: "unknown", Cores: runtime.NumCPU(), LoadStart: loadAvg(), Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				in.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		in.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				var kb int64
				fmt.Sscan(f[1], &kb)
				in.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	version := func(label string, args ...string) {
		out, _ := exec.Command(args[0], args[1:]...).CombinedOutput()
		line := strings.TrimSpace(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
		if line != "" {
			in.Versions = append(in.Versions, label+": "+line)
		}
	}
	version("moobi", c.moobi, "version")
	version("dnsmasq", mustLook("dnsmasq"), "--version")
	version("tftpd-hpa", mustLook("in.tftpd"), "-V")
	version("nginx", mustLook("nginx"), "-v")
	version("perfdhcp", mustLook("perfdhcp"), "-v")
	in.Versions = append(in.Versions, "bench (clients, harness): "+runtime.Version())
	return in
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "**FAIL**"
}

// report is the results as markdown: printed and written to --out.
func (b *runner) report() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	in := b.info
	p("# Moobi benchmark results\n\n")
	p("- date: %s; run time %s\n", in.Date, b.elapsed.Round(time.Second))
	p("- machine: %s, %d cores, %s memory, kernel %s\n", in.CPU, in.Cores, in.Memory, in.Kernel)
	p("- load average (1, 5, 15 min) at start: %s; at end: %s (other work shares this machine)\n", in.LoadStart, in.LoadEnd)
	p("- %s\n", strings.Join(in.Versions, "; "))
	for _, m := range b.notMeasured {
		p("- not measured: %s\n", m)
	}
	for _, m := range b.labNotes {
		p("- host memory, %s\n", m)
	}
	if b.net != nil {
		p("- proxy DHCP, TFTP, HTTP: servers and clients in two network namespaces joined by a veth pair (%s ↔ %s), each server alone in turn;\n", srvAddr, cliAddr)
		p("  each figure is the median of %d runs per server, the servers alternating run by run\n", b.c.repeat)
	}
	p("\n")

	p("## Targets\n\n| target | moobi | reference | ratio | result |\n|---|---|---|---|---|\n")
	for _, t := range b.targets() {
		p("| %s | %s | %s | %s | %s |\n", t.what, t.moobi, t.ref, orDash(t.ratio), passFail(t.pass))
	}
	p("\n")

	if b.c.sections["dhcp"] {
		p("## Proxy DHCP (perfdhcp -i: DISCOVER → OFFER, %s simulated clients)\n\n", thousands(b.c.dhcpMACs))
		p("| run | server | sent | received | drops | replies/s | p50 ms | p99 ms | max ms | server CPU s | CPU µs per reply | machine CPU |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, wl := range b.sectionWorks("dhcp") {
			for _, srv := range []string{"moobi", "dnsmasq"} {
				if s, ok := b.median(wl, srv); ok {
					r := s.dhcp
					p("| %s | %s | %d | %d | %d | %.0f | %.3f | %.3f | %.3f | %.2f | %.0f | %.0f%% |\n", wl.label, srv, r.Sent, r.Received, r.Drops, r.Rate, r.P50, r.P99, r.Max,
						s.serverCPU, 1e6*s.serverCPU/float64(r.Received), 100*s.machineCPU)
				}
			}
		}
		p("\n")
	}
	for _, sec := range []string{"tftp", "http"} {
		if !b.c.sections[sec] {
			continue
		}
		if sec == "tftp" {
			p("## TFTP (pin/tftp client, blksize 1468, octet)\n\n")
		} else {
			p("## HTTP (Go client, a new connection per download)\n\n")
		}
		p("| file, clients at once | server | downloads | errors | MB/s aggregate | p50 ms | p99 ms | server CPU s | machine CPU |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, wl := range b.sectionWorks(sec) {
			for _, srv := range []string{"moobi", b.refs[sec]} {
				if s, ok := b.median(wl, srv); ok {
					r := s.xfer
					p("| %s | %s | %d | %d | %.1f | %.1f | %.1f | %.2f | %.0f%% |\n", wl.label, srv, r.Transfers, r.Errors, r.MBps, r.P50, r.P99, s.serverCPU, 100*s.machineCPU)
				}
			}
		}
		p("\n")
	}

	for _, x := range b.extra {
		p("%s\n", strings.TrimRight(x.markdown, "\n")+"\n")
	}

	for _, pr := range b.profiles {
		p("## CPU profile of moobi: %s, %s\n\n", strings.ToUpper(pr.workload.section), pr.workload.label)
		p("The profiling harness (`bench harness`: bootserver.Service wired as `moobi serve` wires it, with Go's CPU and mutex profilers on) under the same load: %s. Profile: `%s`.\n\n", pr.run.summary(pr.workload), pr.file)
		if pr.note != "" {
			p("%s\n\n", pr.note)
		}
		if pr.flat != "" {
			p("By own time (`go tool pprof -top`):\n\n```\n%s```\n\n", trimPprof(pr.flat))
			p("By cumulative time (`go tool pprof -top -cum`):\n\n```\n%s```\n\n", trimPprof(pr.cum))
		}
		if pr.mutex != "" {
			p("Mutex contention, time goroutines waited (`go tool pprof -top` of the mutex profile):\n\n```\n%s```\n\n", trimPprof(pr.mutex))
		}
	}

	if b.c.sections["dhcp"] || b.c.sections["tftp"] || b.c.sections["http"] {
		p("## Every run\n\n| workload | server | run | load at start (1 min) | figures |\n|---|---|---:|---:|---|\n")
		for _, wl := range b.works {
			if !b.c.sections[wl.section] {
				continue
			}
			for _, srv := range []string{"moobi", b.refs[wl.section]} {
				for _, s := range b.samples[wl.key][srv] {
					p("| %s %s | %s | %d | %s | %s |\n", strings.ToUpper(wl.section), wl.label, srv, s.rep, s.load, s.summary(wl))
				}
			}
		}
		p("\nMB/s is 10^6 bytes per second. Proxy DHCP latencies are perfdhcp's per-exchange send and receive timestamps (`-x t`) of the answered DISCOVERs; sent, received, drops and replies/s are perfdhcp's own report. Server CPU is the user+system time of the server's processes (its process group) during the run; machine CPU is the whole machine's busy share over it, the load generator included. TFTP and HTTP latencies are whole downloads, first request to last byte.\n")
	}
	return w.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// trimPprof drops pprof's header lines about the file and build.
func trimPprof(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		out = append(out, line)
	}
	return strings.TrimLeft(strings.Join(out, "\n"), "\n")
}
