package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"moobi/lab"
)

// browserDashboard is the appliance's dashboard open in headless Chromium
// (Debian's), which reaches the appliance in the lab's namespace through
// lab.Forward.
type browserDashboard struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string // the page's uncaught exceptions and console errors
}

// openDashboard loads the dashboard of the lab's appliance (port 8080).
func openDashboard(t *testing.T, ctx context.Context, l *lab.Lab) *browserDashboard {
	t.Helper()
	local, stop, err := l.Forward(lab.ApplianceAddr + ":8080")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox, // tests run as root
		chromedp.Headless,
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	d := &browserDashboard{ctx: bctx}
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				d.mu.Lock()
				d.problems = append(d.problems, fmt.Sprintf("%s (%s %s:%d)", m, m.Source, m.URL, m.Line))
				d.mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+local+"/")); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	d.poll(t, "the live indicator", `document.getElementById('conn').dataset.conn === 'live' && {}`)
	return d
}

// poll evaluates expr in the page until it returns an object (within 4
// minutes) and returns it.
func (d *browserDashboard) poll(t *testing.T, what, expr string) map[string]any {
	t.Helper()
	v, err := chromedp.Run(d.ctx, chromedp.Poll[map[string]any](expr, chromedp.WithPollingTimeout(4*time.Minute)))
	if err != nil {
		t.Fatalf("dashboard: waiting for %s: %v", what, err)
	}
	return v
}

// checkErrors fails the test if the page logged errors. Failed requests
// while the appliance restarted are expected: the stream reconnects.
func (d *browserDashboard) checkErrors(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	var bad []string
	for _, p := range d.problems {
		if !strings.Contains(p, "net::ERR_") && !strings.Contains(p, "Failed to load resource") {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the dashboard logged errors:\n%s", strings.Join(bad, "\n"))
	}
}
