package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"moobi/boottoken"
	"moobi/lab"
)

// TestPrometheus scrapes a real appliance with Debian's Prometheus (in the
// lab's appliance namespace, listening on its loopback, scraping every
// second, with dist/prometheus-rules.yml loaded). The appliance serves an
// image; one node gets a proxy DHCP answer, fetches iPXE over TFTP, fetches
// the image (`moobi node fetch`) and reports running; an unknown MAC is
// ignored, a garbage datagram is counted, a second node reports failed.
// Then every metric docs/http-api.md lists returns data through
// Prometheus's HTTP API, every moobi_ metric the appliance exports is in
// that list, and the alert MoobiNodeFailed fires.
func TestPrometheus(t *testing.T) {
	lab.RequireRoot(t, "prometheus", "curl", "mksquashfs")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const mac1, mac2 = "52:54:00:9e:00:01", "52:54:00:9e:00:02"
	il := newImageLab(t, ctx, 4, map[string]string{"node01": mac1, "node02": mac2})
	l := il.l
	documented := documentedMetrics(t)

	rules, err := filepath.Abs(filepath.Join("..", "dist", "prometheus-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(l.Dir(), "prometheus.yml")
	writeFile(t, cfg, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: moobi
    static_configs:
      - targets: ["%s:8080"]
`, rules, lab.ApplianceAddr))
	logf, err := os.Create(filepath.Join(l.Dir(), "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	prom := l.Command(ctx, "prometheus", "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(l.Dir(), "prometheus"),
		"--web.listen-address=127.0.0.1:9090", "--log.level=warn")
	prom.Stdout, prom.Stderr = logf, logf
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prom.Process.Signal(os.Interrupt)
		prom.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log (tail):\n%s", lab.Tail(string(b), 30))
		}
	})
	q := promQuerier{l: l}
	eventually(t, ctx, time.Minute, 500*time.Millisecond, func() (bool, string) {
		v, err := q.value(ctx, `up{job="moobi"}`)
		return err == nil && v == 1, fmt.Sprintf("target not up: %v, %v", v, err)
	})
	t.Logf("prometheus scrapes the appliance %v after the test started", time.Since(start).Round(time.Millisecond))

	// Make the appliance do what each metric counts.
	ns1, ns2 := il.addNode(t, ctx, 1, ""), il.addNode(t, ctx, 2, "")
	if r, err := proxyDHCPProbe(ctx, ns1, mac1); err != nil || r.BootFile != "undionly.kpxe" {
		t.Fatalf("proxy DHCP probe: %+v, %v", r, err)
	}
	if err := dhcpDiscoverOnce(ctx, ns1, "52:54:00:9e:ff:ff"); err != nil {
		t.Fatal(err)
	}
	if err := dhcpGarbage(ctx, ns1, lab.ApplianceAddr); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "netns", "exec", ns1, lab.BusyboxPath, "tftp", "-g", "-r", "undionly.kpxe", "-l", filepath.Join(l.Dir(), "undionly.kpxe"), lab.ApplianceAddr)
	if r := il.fetchAll(t, ctx, []string{ns1}, []string{mac1})[0]; r.err != nil {
		t.Fatal(r.err)
	}
	postEvent(t, ctx, ns1, mac1, `{"state":"running","message":"up"}`)
	if _, err := proxyDHCPProbe(ctx, ns2, mac2); err != nil {
		t.Fatal(err)
	}
	postEvent(t, ctx, ns2, mac2, `{"state":"failed","reason":"test: a failed boot"}`)

	// Each series, through Prometheus: at least the given value.
	want := []struct {
		query string
		min   float64
	}{
		{`sum(moobi_dhcp_replies_total{port="67",firmware="bios"})`, 2},
		{`sum(moobi_dhcp_ignored_total{reason="unknown-mac"})`, 1},
		{`sum(moobi_dhcp_malformed_total{port="67"})`, 1},
		{`sum(moobi_tftp_transfers_total{result="ok"})`, 1},
		{`sum(moobi_http_requests_total)`, 3},
		{`moobi_http_refused_connections_total`, 0},
		{`sum(moobi_http_auth_refused_total)`, 0},
		{`sum(moobi_swarm_uploaded_bytes_total{image="web"})`, float64(il.size)},
		{`sum(moobi_swarm_peers{image="web"})`, 0},
		{`sum(moobi_swarm_node_bytes{image="web"})`, 0},
		{`sum(moobi_seeder_resting_versions{image="web"})`, 0},
		{`count(moobi_swarm_handshakes_closed_total{reason=~"per-address|made-room"})`, 2}, // both reasons, from the start
		{`moobi_nodes{state="running"}`, 1},
		{`moobi_nodes{state="failed"}`, 1},
		{`moobi_nodes_state_age_max_seconds{state="running"}`, 0},
		{`sum(moobi_boot_phase_seconds_count)`, 3},
		{`moobi_boot_seconds_count`, 1},
		{`moobi_rollout_hosts{state="running"}`, 0},
		{`moobi_rollouts{state="running"}`, 0},
		{`moobi_rollout_batches_done_total`, 0},
		{`moobi_power_state{state="unknown"}`, 0}, // no host has a bmc: 0, but a series
		{`ALERTS{alertname="MoobiNodeFailed",alertstate="firing"}`, 1},
	}
	for _, w := range want {
		eventually(t, ctx, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
			v, err := q.value(ctx, w.query)
			return err == nil && v >= w.min, fmt.Sprintf("%s = %v (%v), want at least %v", w.query, v, err, w.min)
		})
	}
	// Every documented metric has data; every exported one is documented.
	queried := strings.Join(func() []string {
		var s []string
		for _, w := range want {
			s = append(s, w.query)
		}
		return s
	}(), " ")
	for _, m := range documented {
		if !regexp.MustCompile(`\b` + m + `(_count|_bucket|_sum)?\b`).MatchString(queried) {
			t.Errorf("docs/http-api.md lists %s, which this test does not query", m)
		}
	}
	names, err := q.names(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(n, "moobi_") && !slices.Contains(documented, n) && !slices.Contains(documented, base) {
			t.Errorf("the appliance exports %s, which docs/http-api.md does not list", n)
		}
	}
	t.Logf("TestPrometheus: %d documented metrics with data, in %v", len(documented), time.Since(start).Round(time.Millisecond))
}

// documentedMetrics is every moobi_ metric docs/http-api.md names.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "http-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`\bmoobi_[a-z0-9_]+`).FindAllString(string(b), -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	// The interface contract's names (DESIGN.md) must be among them.
	for _, m := range []string{"moobi_dhcp_replies_total", "moobi_tftp_transfers_total", "moobi_http_requests_total", "moobi_swarm_uploaded_bytes_total", "moobi_nodes"} {
		if !slices.Contains(out, m) {
			t.Errorf("docs/http-api.md does not list %s", m)
		}
	}
	return out
}

// postEvent posts a node event from the node's namespace, as the node
// does: with the boot token of its boot script (fetched first), from its
// own address.
func postEvent(t *testing.T, ctx context.Context, ns, mac, body string) {
	t.Helper()
	base := "http://" + lab.ApplianceAddr + ":8080"
	script, err := lab.NetnsCommand(ctx, ns, "curl", "-sS", "--fail", "--max-time", "10", base+"/boot/"+mac+".ipxe").Output()
	if err != nil {
		t.Fatalf("GET /boot/%s.ipxe: %v", mac, err)
	}
	token := boottoken.FromCmdline(string(script))
	if token == "" {
		t.Fatalf("the boot script of %s sets no %s=:\n%s", mac, boottoken.CmdlineParam, script)
	}
	run(t, ctx, "ip", "netns", "exec", ns, "curl", "-sS", "--fail", "--max-time", "10", "-H", "Content-Type: application/json",
		"-H", boottoken.Header+": "+token, "--data", body, base+"/v1/nodes/"+mac+"/events")
}

// promQuerier asks the Prometheus in the lab's appliance namespace.
type promQuerier struct{ l *lab.Lab }

func (p promQuerier) get(ctx context.Context, path string, out any) error {
	body, err := curl(ctx, p.l, "http://127.0.0.1:9090"+path)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return fmt.Errorf("GET %s: %w: %q", path, err, body)
	}
	if r.Status != "success" {
		return fmt.Errorf("GET %s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, out)
}

// value is the sum of an instant query's samples, or an error if it has
// none.
func (p promQuerier) value(ctx context.Context, query string) (float64, error) {
	var d struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(query), &d); err != nil {
		return 0, err
	}
	if len(d.Result) == 0 {
		return 0, fmt.Errorf("no data")
	}
	var sum float64
	for _, r := range d.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("value %q: %w", s, err)
		}
		sum += v
	}
	return sum, nil
}

// names lists the metric names Prometheus holds.
func (p promQuerier) names(ctx context.Context) ([]string, error) {
	var names []string
	err := p.get(ctx, "/api/v1/label/__name__/values", &names)
	return names, err
}
