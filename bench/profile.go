package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"moobi/bootserver"
	"moobi/inventory"
	"moobi/logbuf"
	"moobi/metrics"
)

// harnessMain is `bench harness`: the appliance's boot services
// (bootserver.Service, as `moobi serve` wires them, less boot config
// signing) in this process, under a Go CPU profile written when it is
// stopped with SIGINT or SIGTERM. The released binary is stripped and has
// no pprof endpoint; this is the same code with a profiler attached.
func harnessMain(args []string) int {
	fs := flag.NewFlagSet("harness", flag.ContinueOnError)
	cfg := fs.String("config", "hosts.yaml", "inventory file")
	out := fs.String("cpuprofile", "cpu.pprof", "CPU profile to write")
	mutexOut := fs.String("mutexprofile", "", "mutex contention profile to write, if set")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *mutexOut != "" {
		runtime.SetMutexProfileFraction(1)
	}
	// Logged as moobi serve logs: in batches, warnings at once.
	lw := logbuf.New(os.Stderr, logbuf.Delay)
	defer lw.Close()
	log := slog.New(logbuf.Handler(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelInfo}), lw, slog.LevelWarn))
	store, err := inventory.Open(*cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	svc := &bootserver.Service{Store: store, Metrics: metrics.New(), Log: log, HUP: make(chan os.Signal, 1)}
	err = svc.Run(ctx)
	pprof.StopCPUProfile()
	f.Close()
	if *mutexOut != "" {
		if mf, merr := os.Create(*mutexOut); merr == nil {
			pprof.Lookup("mutex").WriteTo(mf, 0)
			mf.Close()
		}
	}
	if err != nil {
		log.Error("harness failed", "err", err)
		return 1
	}
	return 0
}

// profileReport is what a profiled run found.
type profileReport struct {
	workload workload
	run      sample
	file     string
	flat     string // `go tool pprof -top` (by own time)
	cum      string // `go tool pprof -top -cum`
	mutex    string // `go tool pprof -top` of the mutex profile (delay)
	note     string
}

// profileWorkloads are the workloads of a section to profile: those whose
// target was missed, or with --profile=always the heaviest one.
func (b *runner) profileWorkloads(section string) []workload {
	var out []workload
	ts := b.targets()
	for _, w := range b.sectionWorks(section) {
		for _, t := range ts {
			if t.workloadKey == w.key && !t.pass {
				out = append(out, w)
			}
		}
	}
	if len(out) == 0 && b.c.profile == "always" {
		works := b.sectionWorks(section)
		out = append(out, works[len(works)-1]) // flat-out DHCP; the largest file with the most clients
	}
	return out
}

// profileRun runs one workload against the profiling harness and
// summarises the profiles with `go tool pprof`.
func (b *runner) profileRun(ctx context.Context, w workload, run func(context.Context, server, workload) (sample, error)) error {
	base, err := filepath.Abs(strings.TrimSuffix(b.c.out, ".md") + "-" + w.key)
	if err != nil {
		return err
	}
	file, mutexFile := base+".pprof", base+"-mutex.pprof"
	srv := b.moobiServer(b.c.moobi, file, mutexFile)
	p, err := srv.start(ctx)
	if err != nil {
		return err
	}
	s, err := runHeld(ctx, p, srv, w, run)
	p.stop(syscall.SIGINT)
	if err != nil {
		return err
	}
	fmt.Printf("bench: %-4s profile  %-10s %-40s %s\n", w.section, "harness", w.label, s.summary(w))
	pr := profileReport{workload: w, run: s, file: file}
	goBin, err := exec.LookPath("go")
	if err != nil {
		pr.note = "go is not in $PATH: read the profile with `go tool pprof -top " + file + "`"
	} else {
		pprofTop := func(args ...string) string {
			out, err := exec.CommandContext(ctx, goBin, append([]string{"tool", "pprof", "-top"}, args...)...).CombinedOutput()
			if err != nil {
				pr.note += fmt.Sprintf("go tool pprof %v: %v\n", args, err)
			}
			return string(out)
		}
		pr.flat = pprofTop("-nodecount=20", file)
		pr.cum = pprofTop("-cum", "-nodecount=30", file)
		pr.mutex = pprofTop("-nodecount=12", mutexFile)
	}
	b.profiles = append(b.profiles, pr)
	return nil
}
