package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHelperRogue is the rogue server of TestHostileRackBoot, run by it in
// the appliance's namespace; it does nothing otherwise. It answers the
// first boot config request of each MAC that has a capture in
// MOOBI_ROGUE_DIR (MAC.head and MAC.body, as curl wrote them) with that
// capture, and drops the redirection of that MAC (rogueRule) half a second
// later; other node API requests get 503 (forwarded, they would come from
// the wrong address), and everything else (iPXE's script, kernel and
// initrds) is forwarded to MOOBI_ROGUE_UPSTREAM.
func TestHelperRogue(t *testing.T) {
	dir := os.Getenv("MOOBI_ROGUE_DIR")
	if dir == "" {
		t.Skip("helper for TestHostileRackBoot")
	}
	up, err := url.Parse(os.Getenv("MOOBI_ROGUE_UPSTREAM"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(up)
	var mu sync.Mutex
	replayed := map[string]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nodes/{mac}/boot", func(w http.ResponseWriter, r *http.Request) {
		mac := r.PathValue("mac")
		mu.Lock()
		first := !replayed[mac]
		replayed[mac] = true
		mu.Unlock()
		head, err1 := os.ReadFile(filepath.Join(dir, mac+".head"))
		body, err2 := os.ReadFile(filepath.Join(dir, mac+".body"))
		if !first || err1 != nil || err2 != nil {
			http.Error(w, "rogue: nothing to replay", http.StatusServiceUnavailable)
			return
		}
		sc := bufio.NewScanner(strings.NewReader(string(head)))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && (strings.EqualFold(k, "Moobi-Signature") || strings.EqualFold(k, "Content-Type")) {
				w.Header().Set(k, strings.TrimSpace(v))
			}
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		fmt.Printf("replayed %s to %s\n", mac, r.RemoteAddr)
		// The node's next connections after its backoff (2 s) go to the
		// appliance; its report of the refusal, at once, gets a 503 here.
		time.AfterFunc(500*time.Millisecond, func() {
			if out, err := exec.Command("iptables", rogueRule("-D", mac)...).CombinedOutput(); err != nil {
				fmt.Printf("rogue: drop the redirection of %s: %v\n%s", mac, err, out)
			}
		})
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "rogue: not now", http.StatusServiceUnavailable)
	})
	mux.Handle("/", proxy)
	ln, err := net.Listen("tcp", os.Getenv("MOOBI_ROGUE_LISTEN"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	time.AfterFunc(10*time.Minute, func() { srv.Close() })
	fmt.Println("rogue listening")
	srv.Serve(ln)
}

// TestHelperRackStorm is the attacker of TestHostileRackBoot, run by it in
// another network namespace; it does nothing otherwise. Until the file
// MOOBI_STORM_STOP exists (at most MOOBI_STORM_MAX), against
// MOOBI_STORM_TARGET, it: fetches the boot scripts of the MACs in
// MOOBI_STORM_MACS in turn and asks for their boot configs with the tokens
// it got (its own), faster than the per-node limit; asks for their configs and posts their events with no
// token, another MAC's and a forged one, counting every answer other than
// 403; announces the torrent MOOBI_STORM_INFOHASH from ever new ports as
// seeder and leecher; sends TFTP read requests it never acknowledges; and
// sprays garbage (sprayGarbage). Its last line sums it up (stormFormat).
func TestHelperRackStorm(t *testing.T) {
	target := os.Getenv("MOOBI_STORM_TARGET")
	if target == "" {
		t.Skip("helper for TestHostileRackBoot")
	}
	macs := strings.Split(os.Getenv("MOOBI_STORM_MACS"), ",")
	ih, err := hex.DecodeString(os.Getenv("MOOBI_STORM_INFOHASH"))
	if err != nil || len(ih) != 20 {
		t.Fatalf("MOOBI_STORM_INFOHASH: %v", err)
	}
	most, err := time.ParseDuration(os.Getenv("MOOBI_STORM_MAX"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), most)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(os.Getenv("MOOBI_STORM_STOP")); err == nil {
				cancel()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	var mu sync.Mutex
	counts := map[string]int{}
	add := func(k string, n int) {
		mu.Lock()
		counts[k] += n
		mu.Unlock()
	}
	base := "http://" + target + ":8080"
	client := &http.Client{Timeout: 5 * time.Second}
	// do sends a request and returns its status and body ("" and 0 if it
	// got no answer).
	do := func(method, u, token, body string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
		if err != nil {
			return 0, ""
		}
		if token != "" {
			req.Header.Set("Moobi-Boot", token)
		}
		req.Header.Set("Moobi-Nonce", randomHex(16))
		resp, err := client.Do(req)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	var wg sync.WaitGroup
	wg.Go(func() { sprayGarbage(ctx, t, target, add) })
	// Boot scripts, for the tokens they carry.
	var tokMu sync.Mutex
	tokens := map[string]string{}
	token := func(mac string) string {
		tokMu.Lock()
		defer tokMu.Unlock()
		return tokens[mac]
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			mac := macs[i%len(macs)]
			code, script := do("GET", base+"/boot/"+mac+".ipxe", "", "")
			if code != 0 {
				add("scripts", 1)
			}
			if code == http.StatusTooManyRequests {
				add("scripts429", 1)
			}
			if m := tokenRE.FindStringSubmatch(script); m != nil {
				tokMu.Lock()
				tokens[mac] = m[1]
				tokMu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Its own tokens, faster than a node may ask (5 a second).
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			mac := macs[i%len(macs)]
			for range 20 {
				tok := token(mac)
				if tok == "" {
					break
				}
				if code, _ := do("GET", base+"/v1/nodes/"+mac+"/boot", tok, ""); code != 0 {
					add("own", 1)
					if code == http.StatusTooManyRequests {
						add("own429", 1)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// No token, another MAC's, a forged one: 403, nothing else.
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			mac := macs[i%len(macs)]
			forged := "1" + strings.Repeat("0", 15) + "." + randomHex(32)
			for _, tok := range []string{"", token(macs[(i+1)%len(macs)]), forged} {
				for _, req := range [][3]string{
					{"GET", base + "/v1/nodes/" + mac + "/boot", ""},
					{"POST", base + "/v1/nodes/" + mac + "/events", `{"state":"failed","reason":"taken over"}`},
				} {
					code, _ := do(req[0], req[1], tok, req[2])
					if code == 0 {
						continue
					}
					add("refused", 1)
					if code != http.StatusForbidden {
						add("leaks", 1)
						fmt.Printf("leak: %s %s with token %q: %d\n", req[0], req[1], tok, code)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The tracker, from ever new ports: seeders, leechers, completed.
	wg.Go(func() {
		q := url.QueryEscape(string(ih))
		for i := 0; ctx.Err() == nil; i++ {
			left, event := "0", ""
			if i%2 == 1 {
				left = "1048576"
			}
			if i%3 == 0 {
				event = "&event=completed"
			}
			u := fmt.Sprintf("%s/announce?info_hash=%s&peer_id=-XX0001-%012d&port=%d&uploaded=0&downloaded=0&left=%s&compact=1%s",
				base, q, i, 20000+i%40000, left, event)
			if code, body := do("GET", u, "", ""); code == http.StatusOK && !strings.Contains(body, "failure reason") {
				add("announces", 1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	// TFTP read requests, never acknowledged; each from a socket kept open
	// a while, as a slow client would.
	wg.Go(func() {
		dst := &net.UDPAddr{IP: net.ParseIP(target), Port: 69}
		var open []*net.UDPConn
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		for i := 0; ctx.Err() == nil; i++ {
			c, err := net.DialUDP("udp4", nil, dst)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			name := []string{"undionly.kpxe", "ipxe.efi"}[i%2]
			rrq := "\x00\x01" + name + "\x00octet\x00"
			if i%3 == 0 {
				rrq += "blksize\x001468\x00tsize\x000\x00"
			}
			if _, err := c.Write([]byte(rrq)); err == nil {
				add("tftp", 1)
			}
			if open = append(open, c); len(open) > 32 {
				open[0].Close()
				open = open[1:]
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Wait()
	garbage := 0
	for k, n := range counts {
		if strings.HasPrefix(k, "udp/") || strings.HasPrefix(k, "tcp/") {
			garbage += n
		}
	}
	fmt.Printf(stormFormat+"\n", counts["scripts"], counts["scripts429"], counts["own"], counts["own429"],
		counts["refused"], counts["leaks"], counts["announces"], counts["tftp"], counts["discover"], garbage)
}
