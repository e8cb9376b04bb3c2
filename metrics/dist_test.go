package metrics

// The Grafana dashboard and the Prometheus alert rules in dist/ query the
// metrics by name: these tests check every name they use against what the
// registry exports, and run the rules through promtool (syntax, then unit
// tests: each alert fires on the series it is about, and not on others).

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"moobi/bootserver/proxydhcp"
	"moobi/bootserver/tftpd"
)

// exportedNames is every series name the registry exports once each metric
// has data, histograms with their _bucket, _sum and _count.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := New()
	m.SetSources(func() map[string]int64 { return map[string]int64{"web": 1} }, func() map[string]int { return map[string]int{"running": 1} })
	m.SetSwarmSource(func() []Swarm { return []Swarm{{Image: "web", Seeders: 1}} })
	m.SetRestSource(func() map[string]int { return map[string]int{"web": 0} })
	m.SetStateAgeSource(func() map[string]time.Duration { return map[string]time.Duration{"fetching": time.Second} })
	m.WebSeedSent("web", 1)
	m.DHCPReply(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, proxydhcp.Decision{Firmware: "bios"}, 67)
	m.DHCPIgnored("unknown-mac", 67)
	m.DHCPMalformed(67)
	m.TFTPTransfer(net.IPv4(10, 0, 0, 1), "undionly.kpxe", tftpd.Result("ok"))
	m.HTTPRequest("/healthz", 200)
	m.HTTPRefused()
	m.AuthRefused()("missing")
	m.SetPowerSource(func() map[string]int { return map[string]int{"on": 1} })
	m.SetHandshakeSource(func() HandshakesClosed { return HandshakesClosed{PerAddress: 1} })
	m.Rollouts(func() map[string]int { return map[string]int{"booting": 1} }, func() map[string]int { return map[string]int{"running": 1} })()
	m.PhaseDone("fetching", time.Second)
	m.BootDone(time.Minute)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	return names
}

var moobiName = regexp.MustCompile(`\bmoobi_[a-z0-9_]+`)

// checkNames reports each moobi_ name an expression uses that the registry
// does not export.
func checkNames(t *testing.T, where string, exprs []string, names map[string]bool) (used int) {
	t.Helper()
	for _, e := range exprs {
		for _, n := range moobiName.FindAllString(e, -1) {
			used++
			if !names[n] {
				t.Errorf("%s queries %s, which package metrics does not export: %s", where, n, e)
			}
		}
	}
	return used
}

func repoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dashboardQueries is every PromQL expression in a Grafana dashboard:
// the panels' targets and the template variables' queries.
func dashboardQueries(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
				out = append(out, s)
			} else if q, ok := x.(map[string]any); ok && k == "query" {
				if s, ok := q["query"].(string); ok {
					out = append(out, s)
				}
			} else {
				out = append(out, dashboardQueries(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, dashboardQueries(x)...)
		}
	}
	return out
}

func TestGrafanaDashboard(t *testing.T) {
	var dash map[string]any
	if err := json.Unmarshal(repoFile(t, "dist/grafana-moobi.json"), &dash); err != nil {
		t.Fatalf("dist/grafana-moobi.json: %v", err)
	}
	for _, k := range []string{"title", "uid", "panels", "schemaVersion"} {
		if dash[k] == nil {
			t.Errorf("dist/grafana-moobi.json has no %q", k)
		}
	}
	names := exportedNames(t)
	used := checkNames(t, "dist/grafana-moobi.json", dashboardQueries(dash), names)
	// Every moobi_ metric is on the dashboard.
	all := strings.Join(dashboardQueries(dash), "\n")
	for n := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(n, "moobi_") && !regexp.MustCompile(`\b`+base+`(_bucket|_sum|_count)?\b`).MatchString(all) {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
	t.Logf("%d metric references, all exported", used)
}

// rulesFile is dist/prometheus-rules.yml.
type rulesFile struct {
	Groups []struct {
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRulesUseExportedMetrics(t *testing.T) {
	var rf rulesFile
	if err := yaml.Unmarshal(repoFile(t, "dist/prometheus-rules.yml"), &rf); err != nil {
		t.Fatalf("dist/prometheus-rules.yml: %v", err)
	}
	var exprs, alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			exprs, alerts = append(exprs, r.Expr), append(alerts, r.Alert)
		}
	}
	checkNames(t, "dist/prometheus-rules.yml", exprs, exportedNames(t))
	for _, a := range []string{"MoobiNodeFailed", "MoobiNodeDegraded", "MoobiNodeStuck", "MoobiApplianceUploadSaturated", "MoobiSwarmWithoutSeeders"} {
		if !slices.Contains(alerts, a) {
			t.Errorf("dist/prometheus-rules.yml has no alert %s", a)
		}
	}
}

// requirePromtool skips without promtool, or fails under
// MOOBI_REQUIRE_ROOT_TESTS=1 (CI installs Debian's prometheus).
func requirePromtool(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("MOOBI_REQUIRE_ROOT_TESTS") == "1" {
			t.Fatalf("needs promtool (Debian's prometheus): %v", err)
		}
		t.Skipf("needs promtool (Debian's prometheus): %v", err)
	}
}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "promtool", args...).CombinedOutput(); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestAlertRulesPromtool(t *testing.T) {
	requirePromtool(t)
	rules, err := filepath.Abs(filepath.Join("..", "dist", "prometheus-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", rules)
	unit := filepath.Join(t.TempDir(), "rules_test.yml")
	if err := os.WriteFile(unit, []byte(fmt.Sprintf(rulesUnitTest, rules)), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "test", "rules", unit)
}

// rulesUnitTest is a promtool unit test of the rules (%[1]s: the rules
// file). One sample a minute.
const rulesUnitTest = `rule_files: [%[1]s]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="moobi",instance="a:80"}'
        values: '1 1 0x10'
      - series: 'moobi_nodes{job="moobi",instance="a:80",state="failed"}'
        values: '0 0 1x40'
      - series: 'moobi_nodes{job="moobi",instance="a:80",state="degraded"}'
        values: '0 1x3 0 1x10'
      - series: 'moobi_nodes_state_age_max_seconds{job="moobi",instance="a:80",state="fetching"}'
        values: '0+60x40'
      - series: 'moobi_nodes_state_age_max_seconds{job="moobi",instance="a:80",state="running"}'
        values: '0+60x40'
      - series: 'moobi_nodes_state_age_max_seconds{job="moobi",instance="a:80",state="kernel"}'
        values: '30x40'
      - series: 'moobi_swarm_uploaded_bytes_total{job="moobi",instance="a:80",image="web",protocol="bittorrent"}'
        values: '0+7.5e9x40'
      - series: 'moobi_swarm_uploaded_bytes_total{job="moobi",instance="a:80",image="web",protocol="http"}'
        values: '0+1e6x40'
      - series: 'moobi_swarm_peers{job="moobi",instance="a:80",image="web",role="leecher"}'
        values: '4x40'
      - series: 'moobi_swarm_peers{job="moobi",instance="a:80",image="web",role="seeder"}'
        values: '0x40'
      - series: 'moobi_swarm_peers{job="moobi",instance="a:80",image="db",role="leecher"}'
        values: '4x40'
      - series: 'moobi_swarm_peers{job="moobi",instance="a:80",image="db",role="seeder"}'
        values: '1x40'
    alert_rule_test:
      - eval_time: 1m
        alertname: MoobiNodeFailed
      - eval_time: 3m
        alertname: MoobiNodeFailed
        exp_alerts:
          - exp_labels: {severity: warning, job: moobi, instance: "a:80", state: failed}
            exp_annotations:
              summary: "1 node(s) failed to boot on a:80"
              description: "` + "`moobi status --server http://APPLIANCE:PORT`" + ` lists them with the reason; see docs/operations.md, Troubleshooting by state."
      - eval_time: 3m
        alertname: MoobiApplianceDown
      - eval_time: 5m
        alertname: MoobiApplianceDown
        exp_alerts:
          - exp_labels: {severity: critical, job: moobi, instance: "a:80"}
            exp_annotations:
              summary: "Moobi appliance a:80 does not answer /metrics"
              description: "Nodes cannot network-boot while it is down (proxy DHCP, TFTP and HTTP are one process). Running nodes are not affected."
      - eval_time: 4m
        alertname: MoobiNodeDegraded
      - eval_time: 10m
        alertname: MoobiNodeDegraded
      - eval_time: 12m
        alertname: MoobiNodeDegraded
        exp_alerts:
          - exp_labels: {severity: warning, job: moobi, instance: "a:80", state: degraded}
            exp_annotations:
              summary: "1 node(s) up with failed systemd units on a:80"
              description: "` + "`moobi status`" + ` lists them; the reason names the failed units (` + "`systemctl --failed`" + ` on the node)."
      - eval_time: 30m
        alertname: MoobiNodeStuck
      - eval_time: 35m
        alertname: MoobiNodeStuck
        exp_alerts:
          - exp_labels: {severity: warning, job: moobi, instance: "a:80", state: fetching}
            exp_annotations:
              summary: "A node has been in state fetching for 35m 0s on a:80"
              description: "` + "`moobi status`" + ` shows which node (its AGE) and its last event; docs/operations.md, Troubleshooting by state, says where to look for each state."
      - eval_time: 8m
        alertname: MoobiApplianceUploadSaturated
      - eval_time: 20m
        alertname: MoobiApplianceUploadSaturated
        exp_alerts:
          - exp_labels: {severity: warning, instance: "a:80"}
            exp_annotations:
              summary: "Moobi appliance a:80 uploads 1Gbit/s of images"
              description: "Close to the boot link's capacity for 10 minutes. Boot fewer nodes at once, or check moobi_swarm_node_bytes: nodes should get most of an image from each other."
      - eval_time: 3m
        alertname: MoobiSwarmWithoutSeeders
      - eval_time: 10m
        alertname: MoobiSwarmWithoutSeeders
        exp_alerts:
          - exp_labels: {severity: warning, job: moobi, instance: "a:80", image: web, role: leecher}
            exp_annotations:
              summary: "Image web on a:80: 4 node(s) downloading, none seeding"
              description: "No node has finished the image's current version (or nodes that did stopped seeding) for 5 minutes: the appliance serves every byte. Expected for the first nodes after a publish."
`
