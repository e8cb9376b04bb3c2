// Package e2e boots real VMs (SeaBIOS with iPXE, OVMF) in a throwaway
// network-namespace lab against a real `moobi serve` and a real site DHCP
// server (dnsmasq). The tests need root, qemu and the packages .ci/run
// installs.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"moobi/lab"
)

// moobiBinary is $MOOBI_BIN, or a fresh build of ./appliance.
func moobiBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("MOOBI_BIN"); b != "" {
		return b
	}
	out := filepath.Join(t.TempDir(), "moobi")
	cmd := exec.Command("go", "build", "-o", out, "moobi/appliance")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build moobi: %v\n%s", err, b)
	}
	return out
}

// startAppliance runs `moobi serve --config cfg` in the lab until the test ends.
func startAppliance(t *testing.T, ctx context.Context, l *lab.Lab, bin, cfg string) *lab.Appliance {
	t.Helper()
	a, err := l.StartAppliance(ctx, bin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("moobi serve log (tail):\n%s", lab.Tail(a.Log(), 60))
		}
	})
	return a
}

// eventually calls check every `every` until it reports done, and fails
// the test with the state check last described once timeout has passed or
// ctx has ended.
func eventually(t *testing.T, ctx context.Context, timeout, every time.Duration, check func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, state)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", state, ctx.Err())
		case <-time.After(every):
		}
	}
}

// curl fetches a URL from inside the lab's appliance namespace.
func curl(ctx context.Context, l *lab.Lab, url string) (string, error) {
	out, err := l.Command(ctx, "curl", "-sS", "--max-time", "10", url).Output()
	return string(out), err
}
