package metrics

import (
	"io"
	"net/http/httptest"
)

// scrape is m's /metrics page, as Prometheus would read it.
func scrape(m *Metrics) string {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}
