package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"moobi/bootserver/httpd"
	"moobi/rollout"
)

const rolloutUsage = `usage:
  moobi rollout start [--version V] [--batch N] [--max-failures N] [--batch-timeout D]
                      [--accept-degraded] [--make-current] [--dry-run] IMAGE TARGET...
  moobi rollout status [ID]
  moobi rollout pause|resume|abort ID
  moobi rollout pins
  moobi rollout unpin HOST...|all
each also takes [--config hosts.yaml] [--server URL] [--token-file FILE]
(TARGET: host name, glob such as 'rack1-*', profile:NAME, all)
`

// rolloutCmd is `moobi rollout`: it starts, shows and controls rollouts
// through the appliance's /v1/rollouts.
func rolloutCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, rolloutUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("rollout "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	af := newAdminFlags(fs)
	var req rollout.Request
	timeout := time.Duration(rollout.DefaultBatchTimeout)
	if sub == "start" {
		fs.StringVar(&req.Version, "version", "", "the version to move the hosts to (default: the image's current version)")
		fs.IntVar(&req.BatchSize, "batch", rollout.DefaultBatchSize, "hosts power-cycled together")
		fs.IntVar(&req.MaxFailures, "max-failures", 0, "hosts that may fail before the rollout stops")
		fs.DurationVar(&timeout, "batch-timeout", rollout.DefaultBatchTimeout, "how long a batch's hosts have to reach running on the version")
		fs.BoolVar(&req.AcceptDegraded, "accept-degraded", false, "count a host that comes up degraded (systemd with failed units) as done")
		fs.BoolVar(&req.MakeCurrent, "make-current", false, "when the rollout succeeds, make the version the image's current one")
		fs.BoolVar(&req.DryRun, "dry-run", false, "print the plan; change nothing")
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "moobi rollout %s: %v\n", sub, err); return 1 }
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "moobi rollout %s: %s\n%s", sub, msg, rolloutUsage)
		return 2
	}
	switch sub {
	case "start":
		if len(pos) < 2 {
			return usage("name an image and targets")
		}
	case "status":
		if len(pos) > 1 {
			return usage("at most one rollout ID")
		}
	case "pause", "resume", "abort":
		if len(pos) != 1 {
			return usage("name one rollout ID")
		}
	case "pins":
		if len(pos) != 0 {
			return usage("no arguments")
		}
	case "unpin":
		if len(pos) == 0 {
			return usage("name the hosts to unpin, or all")
		}
	default:
		return usage(fmt.Sprintf("unknown subcommand %q", sub))
	}
	server, token, err := af.resolve()
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var r rollout.Rollout
	switch sub {
	case "start":
		req.Image, req.Targets, req.BatchTimeout = pos[0], pos[1:], rollout.Duration(timeout)
		if err := adminRequest(ctx, http.MethodPost, server, token, "/v1/rollouts", req, &r, http.StatusOK, http.StatusCreated); err != nil {
			return fail(err)
		}
		printPlan(stdout, r)
		if req.DryRun {
			fmt.Fprintln(stdout, "dry run: nothing changed")
		} else {
			fmt.Fprintf(stdout, "rollout %s started; follow it with: moobi rollout status %s\n", r.ID, r.ID)
		}
		return 0
	case "pins":
		var list httpd.PinList
		if err := adminRequest(ctx, http.MethodGet, server, token, "/v1/pins", nil, &list, http.StatusOK); err != nil {
			return fail(err)
		}
		printPins(stdout, list.Pins, time.Now())
		return 0
	case "unpin":
		req := rollout.UnpinRequest{Hosts: pos}
		if len(pos) == 1 && pos[0] == "all" {
			req = rollout.UnpinRequest{All: true}
		}
		var res httpd.Unpinned
		if err := adminRequest(ctx, http.MethodPost, server, token, "/v1/pins/unpin", req, &res, http.StatusOK); err != nil {
			return fail(err)
		}
		for _, p := range res.Unpinned {
			fmt.Fprintf(stdout, "unpinned %s (was %s %s); it boots the image's current version from its next boot\n", p.Host, p.Image, p.Version)
		}
		if len(res.Unpinned) == 0 {
			fmt.Fprintln(stdout, "no pins")
		}
		return 0
	case "status":
		if len(pos) == 0 {
			var list httpd.RolloutList
			if err := adminRequest(ctx, http.MethodGet, server, token, "/v1/rollouts", nil, &list, http.StatusOK); err != nil {
				return fail(err)
			}
			printRollouts(stdout, list.Rollouts, time.Now())
			return 0
		}
		if err := adminRequest(ctx, http.MethodGet, server, token, "/v1/rollouts/"+url.PathEscape(pos[0]), nil, &r, http.StatusOK); err != nil {
			return fail(err)
		}
	default:
		if err := adminRequest(ctx, http.MethodPost, server, token, "/v1/rollouts/"+url.PathEscape(pos[0])+"/"+sub, nil, &r, http.StatusOK); err != nil {
			return fail(err)
		}
	}
	printRollout(stdout, r, time.Now())
	return 0
}

// printPins prints one line per pinned host: the image and version it
// boots, the rollout that pinned it and how long ago.
func printPins(w io.Writer, pins []rollout.HostPin, now time.Time) {
	if len(pins) == 0 {
		fmt.Fprintln(w, "no pins: every host boots its image's current version")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tIMAGE\tVERSION\tROLLOUT\tAGE")
	for _, p := range pins {
		ro := p.Rollout
		if ro == "" {
			ro = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Host, p.Image, p.Version, ro, age(now, p.Set))
	}
	tw.Flush()
}

// printPlan prints a rollout's batches: each host, the version it runs
// and the one it goes to.
func printPlan(w io.Writer, r rollout.Rollout) {
	fmt.Fprintf(w, "rollout %s: image %s to %s, %d hosts in %d batches of %d, max failures %d, batch timeout %v\n",
		r.ID, r.Image, r.Version, len(r.Hosts()), len(r.Batches), r.BatchSize, r.MaxFailures, time.Duration(r.BatchTimeout))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tHOST\tVERSION\tNOTE")
	for _, b := range r.Batches {
		for _, h := range b.Hosts {
			from := h.FromVersion
			if from == "" {
				from = "?"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s -> %s\t%s\n", b.Index+1, h.Name, from, r.Version, h.Reason)
		}
	}
	tw.Flush()
}

// printRollouts prints one line per rollout.
func printRollouts(w io.Writer, list []rollout.Rollout, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no rollouts")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tIMAGE\tVERSION\tSTATE\tBATCH\tHOSTS\tFAILED\tAGE\tREASON")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Image, r.Version, r.State, batchColumn(r),
			hostsColumn(r), r.Failures, age(now, r.Updated), r.Reason)
	}
	tw.Flush()
}

// printRollout prints one rollout with a line per host.
func printRollout(w io.Writer, r rollout.Rollout, now time.Time) {
	fmt.Fprintf(w, "rollout %s: image %s to %s, %s, batch %s, hosts %s, %d failed (max %d)\n",
		r.ID, r.Image, r.Version, r.State, batchColumn(r), hostsColumn(r), r.Failures, r.MaxFailures)
	if r.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", r.Reason)
	}
	if r.CurrentPending {
		last := ""
		if r.CurrentError != "" {
			last = fmt.Sprintf(" (last try %s ago: %s)", age(now, r.CurrentTried), r.CurrentError)
		}
		fmt.Fprintf(w, "make current: %s not current yet, tried again%s\n", r.Version, last)
	} else if r.MakeCurrent && r.CurrentError != "" {
		fmt.Fprintf(w, "make current: given up: %s\n", r.CurrentError)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tHOST\tSTATE\tVERSION\tNODE\tAGE\tREASON")
	for _, b := range r.Batches {
		for _, h := range b.Hosts {
			node := "-"
			if h.NodeState != "" {
				node = h.NodeState + " " + h.NodeVersion
			}
			t := h.Done
			if t.IsZero() {
				t = h.Powered
			}
			fmt.Fprintf(tw, "%d (%s)\t%s\t%s\t%s -> %s\t%s\t%s\t%s\n", b.Index+1, b.State, h.Name, h.State, h.FromVersion, r.Version, node, age(now, t), h.Reason)
		}
	}
	tw.Flush()
}

// batchColumn is "2/5": the current batch (1-based) of all.
func batchColumn(r rollout.Rollout) string {
	cur := r.Batch + 1
	if cur > len(r.Batches) {
		cur = len(r.Batches)
	}
	return fmt.Sprintf("%d/%d", cur, len(r.Batches))
}

// hostsColumn is "3/8 done": hosts running or skipped, of all.
func hostsColumn(r rollout.Rollout) string {
	return fmt.Sprintf("%d/%d done", r.Counts[rollout.HostRunning]+r.Counts[rollout.Skipped], len(r.Hosts()))
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

// activeRollouts prints, under moobi status, a line per running or paused
// rollout with its batches' progress ("[3/3 2/3 0/2]": hosts done of each
// batch). An appliance that cannot say is reported on stderr only.
func activeRollouts(ctx context.Context, server, auth string, stdout, stderr io.Writer) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/v1/rollouts", nil)
	if err != nil {
		return
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "moobi status: rollouts: %v\n", err)
		return
	}
	defer resp.Body.Close()
	var list httpd.RolloutList
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "moobi status: rollouts: %s/v1/rollouts: %s\n", server, resp.Status)
		return
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&list); err != nil {
		fmt.Fprintf(stderr, "moobi status: reading /v1/rollouts: %v\n", err)
		return
	}
	for _, r := range list.Rollouts {
		if !r.State.Active() {
			continue
		}
		var bs []string
		for _, b := range r.Batches {
			done := 0
			for _, h := range b.Hosts {
				if h.State == rollout.HostRunning || h.State == rollout.Skipped || h.State == rollout.HostFailed {
					done++
				}
			}
			bs = append(bs, fmt.Sprintf("%d/%d", done, len(b.Hosts)))
		}
		fmt.Fprintf(stdout, "rollout %s: %s to %s, %s, batch %s, %s, %d failed (max %d) [%s]\n",
			r.ID, r.Image, r.Version, r.State, batchColumn(r), hostsColumn(r), r.Failures, r.MaxFailures, strings.Join(bs, " "))
	}
}
