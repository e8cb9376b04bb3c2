package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRestingVersions: the seeder's paused versions are scraped by image,
// zero included.
func TestRestingVersions(t *testing.T) {
	m := New()
	resting := map[string]int{"web": 1, "db": 0}
	m.SetRestSource(func() map[string]int { return resting })
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	out := scrape()
	for _, want := range []string{`moobi_seeder_resting_versions{image="web"} 1`, `moobi_seeder_resting_versions{image="db"} 0`} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q:\n%s", want, out)
		}
	}
	resting["web"] = 0
	if out := scrape(); !strings.Contains(out, `moobi_seeder_resting_versions{image="web"} 0`) {
		t.Errorf("after the upload resumed, scrape lacks web 0:\n%s", out)
	}
}
