package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"os/exec"
	"testing"
	"time"

	"moobi/lab"
)

// TestFakeSeederCannotPauseTheAppliance: once the appliance has sent more
// than its free budget of an image (two nodes fetched it in turn, so it
// would pause its upload while a node holds every piece,
// seed_rest_copies 1), a host that never booted announces itself to the
// tracker as a seeder of it (left=0, from several ports). The appliance
// does not pause its upload (moobi_seeder_resting_versions stays 0 from the
// announce until the next node has verified), and that node gets the
// whole image from the appliance's seeder, with no web seed.
func TestFakeSeederCannotPauseTheAppliance(t *testing.T) {
	lab.RequireRoot(t, "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	macs := []string{"52:54:00:5b:00:01", "52:54:00:5b:00:02", "52:54:00:5b:00:03"}
	il := newImageLab(t, ctx, 16, map[string]string{"node01": macs[0], "node02": macs[1], "node03": macs[2]})
	// The third node's link is slow enough to watch the appliance
	// throughout its download (16 MiB at 20 Mbit/s: about 7 s).
	var nss []string
	for i, rate := range []string{"", "", "20mbit"} {
		nss = append(nss, il.addNode(t, ctx, i, rate))
	}
	metric := func(series string) float64 {
		m, err := curl(ctx, il.l, "http://"+lab.ApplianceAddr+":8080/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return max(0, metricValue(m, series))
	}
	peers := func() float64 {
		return metric(`moobi_swarm_peers{image="web",role="seeder"}`) + metric(`moobi_swarm_peers{image="web",role="leecher"}`)
	}
	var version string
	for i := range 2 {
		res := il.fetchAll(t, ctx, nss[i:i+1], macs[i:i+1], "--webseed-after", "1h")[0]
		if res.err != nil {
			t.Fatal(res.err)
		}
		version = res.version
	}
	// Both stopped seeding; the tracker forgets them (or was told).
	eventually(t, ctx, time.Minute, 250*time.Millisecond, func() (bool, string) {
		n := peers()
		return n == 0, fmt.Sprintf("the tracker still holds %.0f peers of the stopped nodes", n)
	})
	if bt := il.appUploadedBT(t, ctx); bt < 1.25*float64(il.size) {
		t.Fatalf("the appliance uploaded %.0f bytes over BitTorrent, less than its free budget (1.25 × %d): it would not pause anyway", bt, il.size)
	}

	// The fake seeder.
	ns, err := il.l.AddHost(ctx, "fake")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "ip", "-n", ns, "addr", "add", "10.99.0.66/24", "dev", "eth0")
	ih, err := hex.DecodeString(il.manifest(t, version).InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	for port := 30000; port < 30004; port++ {
		u := fmt.Sprintf("http://%s:8080/announce?info_hash=%s&peer_id=-XX0001-%012d&port=%d&uploaded=0&downloaded=0&left=0&compact=1&event=completed",
			lab.ApplianceAddr, url.QueryEscape(string(ih)), port, port)
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "10", u).CombinedOutput(); err != nil {
			t.Fatalf("announce: %v\n%s", err, out)
		}
	}
	if n := metric(`moobi_swarm_peers{image="web",role="seeder"}`); n < 1 {
		t.Fatalf("the tracker holds %.0f seeders after the fake announces", n)
	}
	run3 := il.startFetch(t, ctx, nss[2:], macs[2:], "--webseed-after", "1h")
	rested, looks := 0, 0
	for run3.verifiedCount() == 0 && len(run3.failures()) == 0 && ctx.Err() == nil {
		if metric(`moobi_seeder_resting_versions{image="web"}`) != 0 {
			rested++
		}
		looks++
		time.Sleep(200 * time.Millisecond)
	}
	res := run3.wait()[0]
	if res.err != nil {
		t.Fatal(res.err)
	}
	if looks < 2 {
		t.Fatalf("the third node verified after %d looks at the appliance: too fast to tell", looks)
	}
	t.Logf("third node: %d bytes from the appliance's seeder, %d from peers, %d from the web seed in %.1fs; the appliance rested at %d of %d looks",
		res.fromApp, res.fromPeers, res.fromSeed, res.seconds, rested, looks)
	if rested > 0 {
		t.Errorf("the appliance paused its upload at %d of %d looks after a host that never booted announced itself as a seeder", rested, looks)
	}
	if res.fromApp < il.size {
		t.Errorf("the third node got %d of %d bytes from the appliance's seeder", res.fromApp, il.size)
	}
}
