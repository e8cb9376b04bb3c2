package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"moobi/bootserver/adminauth"
	"moobi/nodes"
	"moobi/power"
)

// status prints the appliance's view of every node, one line each.
func status(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "http://localhost", "the appliance's HTTP root (its appliance.admin_listen, if set)")
	tokenFile := fs.String("token-file", "", "the admin token, for an appliance with appliance.read_auth token (data_dir/"+adminauth.File+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*server, "/")+"/v1/nodes", nil)
	if *tokenFile != "" {
		token, err := adminauth.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "moobi status: %v\n", err)
			return 1
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "moobi status: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "moobi status: %s/v1/nodes: %s\n", *server, resp.Status)
		return 1
	}
	var list []nodes.Node
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&list); err != nil {
		fmt.Fprintf(stderr, "moobi status: reading /v1/nodes: %v\n", err)
		return 1
	}
	printStatus(stdout, list, time.Now())
	activeRollouts(ctx, strings.TrimRight(*server, "/"), req.Header.Get("Authorization"), stdout, stderr)
	return 0
}

func printStatus(w io.Writer, list []nodes.Node, now time.Time) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMAC\tSTATE\tPOWER\tPROGRESS\tAGE\tLAST EVENT")
	for _, n := range list {
		progress, age := "-", "-"
		if n.Total > 0 {
			progress = fmt.Sprintf("%3.0f%%", 100*float64(n.Done)/float64(n.Total))
		}
		if !n.Updated.IsZero() {
			age = now.Sub(n.Updated).Round(time.Second).String()
		}
		last := n.LastEvent
		if n.Reason != "" {
			last += ": " + n.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.MAC, n.State, powerColumn(n.Power), progress, age, last)
	}
	tw.Flush()
}

// powerColumn is a node's power as `moobi status` shows it: "-" for a
// host without a BMC, the state, and the kind of failure while the BMC's
// last read failed ("unknown (unreachable)").
func powerColumn(r *power.Reading) string {
	if r == nil {
		return "-"
	}
	if r.Failing() {
		return string(r.State) + " (" + r.Error + ")"
	}
	return string(r.State)
}
