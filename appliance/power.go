package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"moobi/bootserver/httpd"
	"moobi/power"
)

// powerCmd asks the appliance to run a power action on the targets' BMCs
// and prints one line per host; it exits 1 if any host failed.
func powerCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: moobi power status|on|off|cycle|pxe [--server URL] [--token-file FILE] [--config hosts.yaml] TARGET...")
		return 2
	}
	action, err := power.ParseAction(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "moobi power:", err)
		return 2
	}
	fs := flag.NewFlagSet("power", flag.ContinueOnError)
	fs.SetOutput(stderr)
	af := newAdminFlags(fs)
	timeout := fs.Duration("timeout", 10*time.Minute, "give up waiting for the appliance after this long")
	targets, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return 2
	}
	if len(targets) == 0 {
		fmt.Fprintln(stderr, "moobi power: name targets: host names, globs such as 'rack1-*', profile:NAME or all")
		return 2
	}
	server, token, err := af.resolve()
	if err != nil {
		fmt.Fprintln(stderr, "moobi power:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	body, _ := json.Marshal(httpd.PowerRequest{Action: string(action), Targets: targets})
	url := server + "/v1/power"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "moobi power:", err)
		return 1
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "moobi power:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(stderr, "moobi power: %s: %s: %s\n", url, resp.Status, strings.TrimSpace(string(msg)))
		return 1
	}
	var out httpd.PowerResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		fmt.Fprintf(stderr, "moobi power: reading %s: %v\n", url, err)
		return 1
	}
	printPower(stdout, action, out)
	if out.Failed > 0 {
		return 1
	}
	return 0
}

// printPower prints one line per host and a summary.
func printPower(w io.Writer, action power.Action, out httpd.PowerResponse) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPOWER\tBMC\tTIME\tRESULT")
	for _, r := range out.Results {
		result := "ok"
		if !r.OK {
			result = "FAILED (" + r.Kind + "): " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1fs\t%s\n", r.Host, r.State, r.BMC, r.Seconds, result)
	}
	tw.Flush()
	fmt.Fprintf(w, "power %s: %d hosts, %d ok, %d failed\n", action, len(out.Results), out.OK, out.Failed)
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
