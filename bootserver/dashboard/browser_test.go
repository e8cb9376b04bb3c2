package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"moobi/bootserver/dashboard"
	"moobi/bootserver/httpd"
	"moobi/boottoken"
	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodes"
	"moobi/power"
	"moobi/power/fleet"
	"moobi/power/poller"
	"moobi/rollout"
)

// chromium is Debian's browser, which the browser test drives.
const chromium = "/usr/bin/chromium"

// The hosts of the test's hosts.yaml, in the order the page shows them.
var testHosts = []struct{ Name, MAC string }{
	{"rack1-node01", "52:54:00:12:34:01"},
	{"rack1-node02", "52:54:00:12:34:02"},
	{"rack1-node03", "52:54:00:12:34:03"},
}

const imageSize = 4 << 20 // the test image's root filesystem, in bytes

// browserAppliance is the appliance the browser test loads the dashboard
// from, with what the test drives of it.
type browserAppliance struct {
	URL   string
	Loads *atomic.Int32 // loads of the page
	// Power reads BMCs: a stub per host, by host name (rack1-node03's
	// never answers).
	Power *poller.Poller
	BMCs  map[string]*stubBMC
	// Rollouts is a real rollout runner over stub power and node views.
	Rollouts *rollout.Runner
	Cycled   *stubPower
	Seen     *stubNodes
}

// applianceForBrowser starts a real appliance HTTP service (inventory of
// testHosts, each with a BMC; an image "web" v1 in the catalog; the BMC
// power poller over stub BMCs; a rollout runner; the dashboard).
func applianceForBrowser(t *testing.T) *browserAppliance {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"vmlinuz": "MZ kernel", "rescue.cpio.gz": "initrd"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "ipxe"), 0o755); err != nil {
		t.Fatal(err)
	}
	var yaml strings.Builder
	yaml.WriteString(`appliance:
  interface: lo
  ipxe_dir: ipxe
profiles:
  rescue:
    kernel: vmlinuz
    initrd: [rescue.cpio.gz]
    cmdline: console=ttyS0
hosts:
`)
	for i, h := range testHosts {
		fmt.Fprintf(&yaml, "  %s:\n    mac: %s\n    profile: rescue\n    bmc: {type: ipmi, address: 10.99.1.%d, user: admin, password_file: bmc.pw}\n", h.Name, h.MAC, i+1)
	}
	if err := os.WriteFile(filepath.Join(dir, "bmc.pw"), []byte("bmc-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(file, []byte(yaml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse(file, data)
	if err != nil {
		t.Fatalf("hosts.yaml: %v", err)
	}

	// An image, so that the swarm panel has something to show.
	cat, err := catalog.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	rootfs := make([]byte, imageSize)
	copy(rootfs, catalog.SquashfsMagic)
	src := catalog.Sources{Kernel: filepath.Join(dir, "bzImage"), Rootfs: filepath.Join(dir, "root.squashfs")}
	os.WriteFile(src.Kernel, []byte("MZ image kernel"), 0o644)
	os.WriteFile(src.Rootfs, rootfs, 0o644)
	if _, err := cat.Publish(context.Background(), "web", src, catalog.PublishOptions{Version: "v1"}); err != nil {
		t.Fatal(err)
	}

	a := &browserAppliance{Loads: &atomic.Int32{}, BMCs: map[string]*stubBMC{}, Cycled: &stubPower{}, Seen: &stubNodes{}}
	byAddr := map[string]*stubBMC{}
	for i, h := range testHosts {
		b := &stubBMC{state: power.On}
		if i == 2 {
			b.set(power.Unknown, fmt.Errorf("no answer: %w", power.ErrUnreachable))
		}
		a.BMCs[h.Name], byAddr[fmt.Sprintf("10.99.1.%d", i+1)] = b, b
	}
	a.Power = &poller.Poller{
		Inventory: func() *inventory.Inventory { return inv },
		Open:      func(b *inventory.BMC) (power.Controller, error) { return byAddr[b.Address], nil },
	}
	a.Power.Poll(context.Background())
	a.Rollouts = &rollout.Runner{
		Path:    filepath.Join(dir, "state", rollout.FileName),
		Power:   a.Cycled,
		Nodes:   a.Seen,
		Catalog: twoVersions{},
		// The rollouts take the hosts as booting image web.
		Inventory: func() ([]power.Host, map[string]string) {
			hosts := fleet.Hosts(inv)
			imageOf := map[string]string{}
			for _, h := range hosts {
				imageOf[h.Name] = "web"
			}
			return hosts, imageOf
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := a.Rollouts.Load(); err != nil {
		t.Fatal(err)
	}
	loads := a.Loads
	page := dashboard.Handler()
	var base string
	s := &httpd.Server{
		Inventory: func() *inventory.Inventory { return inv },
		Nodes:     nodes.New(),
		BaseURL:   func() string { return base },
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Catalog:   cat,
		// Since it started, the appliance sent more than these nodes'
		// current boots took from it: earlier boots count there too.
		Uploaded:    func() map[string]int64 { return map[string]int64{"web": 9 << 20} },
		SwarmCounts: func([20]byte) (int, int) { return 2, 1 },
		PowerStates: a.Power.Readings,
		Rollouts:    a.Rollouts,
		Admin:       func(h http.Handler) http.Handler { return h }, // the test starts rollouts in Go
		Dashboard: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/" {
				loads.Add(1)
			}
			page.ServeHTTP(w, r)
		}),
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections() // the page's event stream
		srv.Close()
	})
	base = srv.URL
	a.URL = srv.URL
	return a
}

// plain returns text from the page with its no-break spaces (between a
// number and its unit) made plain spaces.
func plain(text any) string {
	s, _ := text.(string)
	return strings.ReplaceAll(s, "\u00a0", " ")
}

// postEvent posts a node's event as the node would: with the boot token
// of its boot script (fetched once per server and MAC).
func postEvent(t *testing.T, base, mac, event string) {
	t.Helper()
	tok, ok := bootTokens.Load(base + " " + mac)
	if !ok {
		resp, err := http.Get(base + "/boot/" + mac + ".ipxe")
		if err != nil {
			t.Fatal(err)
		}
		script, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tok = boottoken.FromCmdline(string(script))
		bootTokens.Store(base+" "+mac, tok)
	}
	req, _ := http.NewRequest("POST", base+"/v1/nodes/"+mac+"/events", strings.NewReader(event))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(boottoken.Header, tok.(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST event %s for %s: %s %s", event, mac, resp.Status, body)
	}
}

// bootTokens holds the boot tokens postEvent fetched, by server and MAC.
var bootTokens sync.Map

// TestDashboardInChromium loads the dashboard from a real appliance service
// in headless Chromium and follows a node's boot live: the tiles, the
// progress, the failure and the node's detail.
//
// With MOOBI_SCREENSHOT=FILE it writes a full-page PNG of the dashboard at
// 1200 px wide to FILE (docs/dashboard.png is made so); with
// MOOBI_SCREENSHOT_PHONE=FILE one at 375 px wide.
func TestDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("MOOBI_REQUIRE_ROOT_TESTS") == "1" {
			t.Fatalf("the dashboard's browser test needs Chromium at %s (Debian package chromium): %v", chromium, err)
		}
		t.Skipf("no Chromium at %s (set MOOBI_REQUIRE_ROOT_TESTS=1 to make this a failure)", chromium)
	}
	app := applianceForBrowser(t)
	base, loads := app.URL, app.Loads

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root
		chromedp.Headless,
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	// Collect the page's uncaught exceptions and console errors (CSP
	// violations among them).
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s %s:%d)", m, m.Source, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()

	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	poll := func(what, expr string) map[string]any {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Poll[map[string]any](expr, chromedp.WithPollingTimeout(0)))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		return v
	}

	start := time.Now()
	run("load the dashboard", chromedp.EmulateViewport(1200, 900), chromedp.Navigate(base+"/"))

	// One tile per host of hosts.yaml, none seen yet.
	type tile struct{ Name, MAC, State string }
	tiles, err := chromedp.Run(bctx, chromedp.Poll[[]tile](`(() => {
		const t = [...document.querySelectorAll('#rack [data-mac]')];
		return t.length >= 3 && t.map((e) => ({Name: e.querySelector('.tile-name').textContent, MAC: e.dataset.mac, State: e.dataset.state}));
	})()`, chromedp.WithPollingTimeout(0)))
	if err != nil {
		t.Fatalf("waiting for the tiles: %v", err)
	}
	var want []tile
	for _, h := range testHosts {
		want = append(want, tile{h.Name, h.MAC, "unknown"})
	}
	if !reflect.DeepEqual(tiles, want) {
		t.Fatalf("tiles:\n got %+v\nwant %+v", tiles, want)
	}
	poll("the live indicator", `document.getElementById('conn').dataset.conn === 'live' && {}`)
	run("mark the page", chromedp.Evaluate[chromedp.Void](`window.moobiTestMarker = 'same page'`))

	// Each tile shows its host's power as the poller last read its BMC;
	// rack1-node03's BMC does not answer.
	powerExpr := `(() => {
		const p = [...document.querySelectorAll('#rack [data-mac] .tile-power')];
		return p.length === 3 && p.every((e) => !e.hidden && e.offsetWidth > 0) &&
			Object.fromEntries(p.map((e) => [e.closest('[data-mac]').querySelector('.tile-name').textContent, e.dataset.power + ': ' + e.textContent]));
	})()`
	powerWant := map[string]any{"rack1-node01": "on: power on", "rack1-node02": "on: power on", "rack1-node03": "unknown: power unknown (unreachable)"}
	if got := poll("the power of each tile", powerExpr); !reflect.DeepEqual(got, powerWant) {
		t.Errorf("power on the tiles: %v, want %v", got, powerWant)
	}
	// rack1-node01 is switched off: the next round shows it, live.
	app.BMCs["rack1-node01"].set(power.Off, nil)
	app.Power.Poll(ctx)
	powerWant["rack1-node01"] = "off: power off"
	poll("rack1-node01 off", `(() => { const p = `+powerExpr+`; return p && p['rack1-node01'] === 'off: power off' && p; })()`)

	// The node starts fetching: its tile follows without a reload.
	node := testHosts[0].MAC
	sel := func(state string) chromedp.CSS {
		return chromedp.CSS(fmt.Sprintf(`#rack [data-mac=%q][data-state=%q]`, node, state))
	}
	postEvent(t, base, node, `{"state":"fetching","image":"web","version":"v1","done":1048576,"total":4194304}`)
	run("the tile shows fetching", chromedp.WaitVisible(sel("fetching")))
	got, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]any](fmt.Sprintf(`(() => {
		const t = document.querySelector('#rack [data-mac=%q]');
		const bar = t.querySelector('[role=progressbar]');
		return {text: t.textContent, progress: bar.getAttribute('aria-valuenow'), width: bar.firstChild.style.width,
			visible: bar.offsetWidth > 0, marker: window.moobiTestMarker || ''};
	})()`, node)))
	if err != nil {
		t.Fatal(err)
	}
	if got["progress"] != "25" || got["width"] != "25%" || got["visible"] != true {
		t.Errorf("fetching tile: progress bar %v, width %v, visible %v; want 25, 25%%, true", got["progress"], got["width"], got["visible"])
	}
	for _, s := range []string{"rack1-node01", "fetching", "25% · 1.0 of 4.0 MiB", "127.0.0.1", "web v1"} {
		if !strings.Contains(plain(got["text"]), s) {
			t.Errorf("fetching tile %q lacks %q", got["text"], s)
		}
	}
	if got["marker"] != "same page" || loads.Load() != 1 {
		t.Fatalf("the page was reloaded (marker %q, %d loads of /)", got["marker"], loads.Load())
	}

	// It fails: the tile turns red and says why.
	postEvent(t, base, node, `{"state":"failed","reason":"image sha256 mismatch"}`)
	run("the tile shows failed", chromedp.WaitVisible(sel("failed")))
	got = poll("the failed tile's reason", fmt.Sprintf(`(() => {
		const t = document.querySelector('#rack [data-mac=%q]');
		return t.textContent.includes('image sha256 mismatch') && {
			color: getComputedStyle(t).borderLeftColor, marker: window.moobiTestMarker || ''};
	})()`, node))
	if got["color"] != "rgb(191, 36, 36)" {
		t.Errorf("failed tile's colour is %v, want red", got["color"])
	}
	if got["marker"] != "same page" || loads.Load() != 1 {
		t.Fatalf("the page was reloaded (marker %q, %d loads of /)", got["marker"], loads.Load())
	}

	// Its detail: the reason, the timeline, the download and the events.
	run("open the detail", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#rack [data-mac=%q]`, node))), chromedp.WaitVisible(chromedp.ID("detail")))
	type phase struct{ State, Secs string }
	type event struct{ State, Source, Text string }
	type detail struct {
		Name, Reason, Download string
		Phases                 []phase
		Events                 []event
	}
	d, err := chromedp.Run(bctx, chromedp.Poll[detail](`(() => {
		const d = document.getElementById('detail');
		const events = [...d.querySelectorAll('#detail-events li.event')];
		return !d.hidden && events.length > 0 && {
			Name: document.getElementById('detail-name').textContent,
			Reason: document.getElementById('detail-reason').textContent,
			Download: document.getElementById('detail-download').textContent,
			Phases: [...d.querySelectorAll('#detail-timeline [data-phase]')].map((p) => ({
				State: p.dataset.phase, Secs: p.querySelector('.phase-secs').textContent})),
			Events: events.map((e) => ({State: e.dataset.state, Source: e.dataset.source, Text: e.textContent})),
		};
	})()`, chromedp.WithPollingTimeout(0)))
	if err != nil {
		t.Fatalf("waiting for the detail: %v", err)
	}
	if d.Name != "rack1-node01" || d.Reason != "image sha256 mismatch" {
		t.Errorf("detail of %q shows reason %q, want rack1-node01 and image sha256 mismatch", d.Name, d.Reason)
	}
	// firmware: the boot script that gave the node its boot token.
	if len(d.Phases) != 3 || d.Phases[0].State != "firmware" || d.Phases[1].State != "fetching" || d.Phases[2].State != "failed" {
		t.Errorf("timeline %+v, want the phases firmware, fetching and failed", d.Phases)
	}
	for _, p := range d.Phases {
		if !strings.Contains(p.Secs, " s") {
			t.Errorf("phase %s shows %q, want its duration in seconds", p.State, p.Secs)
		}
	}
	for _, s := range []string{"25% · 1.0 of 4.0 MiB", "reused from cache 0 B", "from peers 0 B", "from the appliance 0 B", "from web seed 0 B"} {
		if !strings.Contains(plain(d.Download), s) {
			t.Errorf("download figures %q lack %q", d.Download, s)
		}
	}
	if len(d.Events) != 3 || d.Events[0].State != "failed" || d.Events[1].State != "fetching" || d.Events[2].State != "firmware" ||
		!strings.Contains(d.Events[0].Text, "image sha256 mismatch") || d.Events[0].Source != "node" {
		t.Errorf("event log %+v, want the node's failed (with its reason), fetching, then the appliance's firmware (boot script), newest first", d.Events)
	}

	// The rest of the rack boots, so that the page shows several states.
	for _, e := range []string{
		`{"state":"dhcp"}`, `{"state":"firmware"}`, `{"state":"kernel"}`,
		`{"state":"fetching","image":"web","version":"v1","done":1048576,"total":4194304,"from_peers":786432,"from_webseed":262144}`,
		`{"state":"verified","message":"sha256 ok"}`,
		`{"state":"running","message":"switch_root to the image","image":"web","version":"v1","done":4194304,"total":4194304,"reused":1048576,"from_peers":1572864,"from_appliance":1048576,"from_webseed":524288}`,
	} {
		postEvent(t, base, testHosts[1].MAC, e)
	}
	for _, e := range []string{
		`{"state":"dhcp"}`, `{"state":"kernel"}`,
		`{"state":"fetching","image":"web","version":"v1","done":3145728,"total":4194304,"from_peers":2621440,"from_webseed":524288}`,
	} {
		postEvent(t, base, testHosts[2].MAC, e)
	}
	poll("the counts", `document.getElementById('counts').textContent === '1 running · 1 fetching · 1 failed' && {}`)
	// The swarm view comes every 3 s: in their current boots the nodes got
	// 6 MiB, 4 from each other and 2 from the appliance (1 from its
	// seeder, 1 from its web seed).
	got = poll("the swarm panel", `(() => {
		const s = document.querySelector('#swarms [data-image="web"]');
		return s && s.textContent.includes('3 nodes') && {text: s.textContent};
	})()`)
	for _, s := range []string{"web v1", "67% offload", "3 nodes · 2 seeders · 1 leecher · 4.0 MiB", "from peers 4.0 MiB", "from the appliance 2.0 MiB"} {
		if !strings.Contains(plain(got["text"]), s) {
			t.Errorf("swarm panel %q lacks %q", got["text"], s)
		}
	}

	testRolloutPanel(t, ctx, app, poll)

	if path := os.Getenv("MOOBI_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// On a phone: the page fits 375 px, with no horizontal scrolling.
	run("phone viewport", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	phone := poll("the phone layout", `({width: window.innerWidth, scroll: document.documentElement.scrollWidth,
		columns: getComputedStyle(document.getElementById('rack')).gridTemplateColumns.split(' ').length})`)
	if phone["width"] != 375.0 || phone["scroll"] != 375.0 {
		t.Errorf("at 375 px: viewport %v px, page %v px wide; want both 375 (viewport meta, no horizontal scrolling)", phone["width"], phone["scroll"])
	}
	if phone["columns"] != 2.0 {
		t.Errorf("at 375 px the rack has %v columns, want 2", phone["columns"])
	}
	if path := os.Getenv("MOOBI_SCREENSHOT_PHONE"); path != "" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Markup from a node is shown as text, never parsed.
	evil := `<img src=x onerror="window.pwned=1"> bad <b>signature</b>`
	b, _ := json.Marshal(map[string]string{"state": "failed", "reason": evil})
	postEvent(t, base, node, string(b))
	got = poll("the new reason", fmt.Sprintf(`(() => {
		const r = document.getElementById('detail-reason').textContent;
		return r === %q && {tags: document.querySelectorAll('main img, main b').length, pwned: window.pwned || 0,
			tile: document.querySelector('#rack [data-mac=%q] .tile-reason').textContent};
	})()`, evil, node))
	if got["tags"] != 0.0 || got["pwned"] != 0.0 || got["tile"] != evil {
		t.Errorf("a reason with markup: %v elements made of it, pwned %v, tile reason %q; want it as plain text", got["tags"], got["pwned"], got["tile"])
	}

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(problems, "\n"))
	}
	if loads.Load() != 1 {
		t.Errorf("/ was loaded %d times, want once", loads.Load())
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}
