package redfish

import (
	"context"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moobi/power"
	"moobi/power/redfish/redfishtest"
)

// machine records what the service did to it.
type machine struct {
	mu   sync.Mutex
	on   bool
	ons  []bool // pxe of each start
	offs int
}

func (m *machine) On(pxe bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on, m.ons = true, append(m.ons, pxe)
	return nil
}
func (m *machine) Off() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.on {
		m.offs++
	}
	m.on = false
	return nil
}
func (m *machine) Running() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.on }

// TestController drives DMTF's public-rackmount1 mockup, served over TLS
// by redfishtest: power, the one-time PXE override, wrong passwords and
// certificates that do not verify.
func TestController(t *testing.T) {
	m := &machine{}
	svc := redfishtest.New("root", "pw", m)
	ts := httptest.NewTLSServer(svc.Handler())
	defer ts.Close()
	ctx := context.Background()
	c := &Controller{Endpoint: ts.URL, User: "root", Password: "pw", InsecureTLS: true}
	if st, err := c.Status(ctx); err != nil || st != power.Off {
		t.Fatalf("Status = %v, %v; want off", st, err)
	}
	if err := c.On(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(ctx); st != power.On {
		t.Fatalf("after On: %v", st)
	}
	if err := c.PXE(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Cycle(ctx); err != nil { // off: powers on
		t.Fatal(err)
	}
	want := []string{"Reset On", "PATCH Boot Pxe Once", "Reset ForceRestart", "Reset ForceOff", "Reset On"}
	if diff := cmp.Diff(want, svc.Requests()); diff != "" {
		t.Errorf("requests -want +got:\n%s", diff)
	}
	if diff := cmp.Diff([]bool{false, true, false}, m.ons); diff != "" {
		t.Errorf("starts from the network -want +got:\n%s", diff)
	}
	if tg, en := svc.Override(); tg != "None" || en != "Disabled" {
		t.Errorf("the one-time override outlived its boot: %s %s", tg, en)
	}

	bad := &Controller{Endpoint: ts.URL, User: "root", Password: "wrong", InsecureTLS: true}
	if _, err := bad.Status(ctx); err == nil || !strings.Contains(err.Error(), "refused the user name or password (HTTP 401") {
		t.Errorf("wrong password: %v", err)
	}
	strict := &Controller{Endpoint: ts.URL, User: "root", Password: "pw"}
	if _, err := strict.Status(ctx); err == nil || !strings.Contains(err.Error(), "TLS certificate does not verify (set bmc.insecure_tls: true") {
		t.Errorf("untrusted certificate with verification on: %v", err)
	}
	trusted := &Controller{Endpoint: ts.URL, User: "root", Password: "pw", RootCAs: rootsOf(ts)}
	if st, err := trusted.Status(ctx); err != nil || st != power.On {
		t.Errorf("certificate verified against its CA: %v, %v", st, err)
	}
}

func rootsOf(ts *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return pool
}
