package metrics

import (
	"strings"
	"testing"
)

// TestPowerState checks that moobi_power_state reports every state, 0
// for those no host is in, and that a second source replaces the first.
func TestPowerState(t *testing.T) {
	m := New()
	if strings.Contains(scrape(m), "moobi_power_state") {
		t.Error("moobi_power_state exported before it has a source")
	}
	m.SetPowerSource(func() map[string]int { return map[string]int{"on": 3, "unknown": 1} })
	m.SetPowerSource(func() map[string]int { return map[string]int{"on": 2, "off": 1} })
	out := scrape(m)
	for _, want := range []string{`moobi_power_state{state="on"} 2`, `moobi_power_state{state="off"} 1`, `moobi_power_state{state="unknown"} 0`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the scrape:\n%s", want, out)
		}
	}
}
