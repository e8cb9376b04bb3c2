package metrics

import "github.com/prometheus/client_golang/prometheus"

// AuthRefused registers moobi_http_auth_refused_total{reason} (reasons
// "missing" and "wrong" start at 0) and returns the function that counts
// one refusal: an admin request without the admin token.
func (m *Metrics) AuthRefused() func(reason string) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moobi_http_auth_refused_total", Help: "Admin HTTP requests refused, by reason (missing: no bearer token, 401; wrong: another token, 403).",
	}, []string{"reason"})
	for _, r := range []string{"missing", "wrong"} {
		c.WithLabelValues(r)
	}
	if err := m.Registry.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			c = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return func(reason string) { c.WithLabelValues(reason).Inc() }
}
