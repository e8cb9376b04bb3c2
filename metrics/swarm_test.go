package metrics

import (
	"strings"
	"testing"
)

// TestRestingVersions: the seeder's paused versions are scraped by image,
// zero included.
func TestRestingVersions(t *testing.T) {
	m := New()
	resting := map[string]int{"web": 1, "db": 0}
	m.SetRestSource(func() map[string]int { return resting })
	out := scrape(m)
	for _, want := range []string{`moobi_seeder_resting_versions{image="web"} 1`, `moobi_seeder_resting_versions{image="db"} 0`} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q:\n%s", want, out)
		}
	}
	resting["web"] = 0
	if out := scrape(m); !strings.Contains(out, `moobi_seeder_resting_versions{image="web"} 0`) {
		t.Errorf("after the upload resumed, scrape lacks web 0:\n%s", out)
	}
}
