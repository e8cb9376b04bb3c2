package main

import (
	"time"

	"bytes"
	"moobi/nodes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func writeInventory(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "ipxe"), 0o755)
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("k"), 0o644)
	path := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(body, "%DIR%", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const inv = `appliance:
  interface: br0
  ipxe_dir: %DIR%/ipxe
profiles:
  rescue:
    kernel: %DIR%/vmlinuz
hosts:
  n1:
    mac: 52:54:00:12:34:01
    profile: rescue
`

func TestCheck(t *testing.T) {
	var out, errb bytes.Buffer
	path := writeInventory(t, inv)
	if code := run([]string{"check", "--config", path}, &out, &errb); code != 0 {
		t.Fatalf("check of a good inventory: exit %d, %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "ok (1 hosts, 1 profiles)") {
		t.Fatalf("output %q", out.String())
	}

	bad := writeInventory(t, inv+"  n2:\n    mac: 52:54:00:12:34:01\n    profile: nosuch\n  n3:\n    mac: nope\n    profile: rescue\n")
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "--config", bad}, &out, &errb); code != 1 {
		t.Fatalf("check of a bad inventory: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `:\d+: .+`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("line %q is not FILE:LINE: message", l)
		}
	}
	for _, want := range []string{":12: host n2: MAC 52:54:00:12:34:01 is already used by host n1 (line 8)", ":11: host n2: profile \"nosuch\" does not exist", ":15: host n3: malformed MAC \"nope\""} {
		if !strings.Contains(errb.String(), bad+want) {
			t.Errorf("output lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestCheckMissingFile(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "no such file") {
		t.Fatalf("stderr %q", errb.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("exit %d, %q", code, errb.String())
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printStatus(&b, []nodes.Node{
		{Name: "n1", MAC: "52:54:00:12:34:01", State: "fetching", Updated: now.Add(-3 * time.Second), LastEvent: "fetching", Done: 50, Total: 200},
		{Name: "n2", MAC: "52:54:00:12:34:02", State: "failed", Updated: now.Add(-time.Minute), LastEvent: "failed", Reason: "no peers"},
		{Name: "n3", MAC: "52:54:00:12:34:03", State: "unknown"},
	}, now)
	want := [][]string{
		{"NAME", "MAC", "STATE", "POWER", "PROGRESS", "AGE", "LAST", "EVENT"},
		{"n1", "52:54:00:12:34:01", "fetching", "-", "25%", "3s", "fetching"},
		{"n2", "52:54:00:12:34:02", "failed", "-", "-", "1m0s", "failed:", "no", "peers"},
		{"n3", "52:54:00:12:34:03", "unknown", "-", "-", "-"},
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want fields %q", i, lines[i], w)
		}
	}
}

func TestVersion(t *testing.T) {
	want := "moobi " + version + "\n"
	for _, arg := range []string{"version", "--version", "-version"} {
		var out, errb bytes.Buffer
		if code := run([]string{arg}, &out, &errb); code != 0 || errb.Len() != 0 {
			t.Fatalf("moobi %s: exit %d, stderr %q", arg, code, errb.String())
		}
		if out.String() != want {
			t.Errorf("moobi %s printed %q, want %q", arg, out.String(), want)
		}
	}
}
