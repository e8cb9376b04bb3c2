package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// pxeClass is option 60 of a BIOS PXE ROM; option 93 (client system
// architecture) 0 is x86 BIOS.
const pxeClass = "PXEClient:Arch:00000:UNDI:002001"

// dhcpResult is one perfdhcp run (DISCOVER→OFFER exchanges only, -i).
type dhcpResult struct {
	Sent, Received, Drops, Orphans int
	// Rate is replies per second: perfdhcp's "Rate:" line (completed
	// exchanges per second) flat out, received/period at a set rate.
	Rate float64
	// Delays of the answered DISCOVERs, from perfdhcp's per-packet
	// timestamps (-x t), in milliseconds.
	P50, P99, Max float64
	Samples       int
	// ClientCPU is perfdhcp's own CPU time (user+system) in seconds.
	ClientCPU float64
}

// perfdhcp runs perfdhcp in the client namespace for secs seconds at rate
// DISCOVERs per second (0: as fast as it can), from --dhcp-macs simulated
// clients (random MACs under 52:54:00; by default a million).
func (b *runner) perfdhcp(ctx context.Context, rate, secs int, label string) (dhcpResult, error) {
	args := []string{"netns", "exec", b.net.cli, mustLook("perfdhcp"), "-4", "-i",
		"-l", cliIf,
		"-o", "60," + hex.EncodeToString([]byte(pxeClass)),
		"-o", "93,0000",
		"-b", "mac=52:54:00:00:00:00", "-R", strconv.Itoa(b.c.dhcpMACs),
		"-p", strconv.Itoa(secs),
		"-x", "t",
		// One thread: perfdhcp's default on a multi-core machine is a
		// second, receiving thread, which on this bench's two cores took
		// 1.5 of them and starved the server under test (a quarter of
		// the DISCOVERs went unanswered for both servers). Single, it
		// takes one core and leaves the other to the server.
		"-g", "single",
	}
	if rate > 0 {
		// At a set rate, wait 200 ms after the last DISCOVER for the
		// answers in flight, which would otherwise count as drops.
		args = append(args, "-r", strconv.Itoa(rate), "-W", "200000")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mustLook("ip"), args...)
	out, err := cmd.CombinedOutput()
	b.seq++
	os.WriteFile(filepath.Join(b.s.dir, fmt.Sprintf("perfdhcp-%03d-%s.txt", b.seq, label)), out, 0o644)
	// Exit status 3: "one or more exchanges were unsuccessful", which is
	// what a flat-out run is about.
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			return dhcpResult{}, fmt.Errorf("perfdhcp: %w\n%s", err, tail(string(out), 20))
		}
	}
	r, err := parsePerfdhcp(string(out))
	if err != nil {
		return r, fmt.Errorf("perfdhcp output: %w\n%s", err, tail(string(out), 20))
	}
	r.ClientCPU = exitedCPU(cmd.ProcessState)
	if rate > 0 {
		// perfdhcp's rate counts the 200 ms wait; replies to the
		// DISCOVERs of the test period over the test period is the
		// figure. (Flat out there is no wait, and its rate is kept.)
		r.Rate = float64(r.Received) / float64(secs)
	}
	return r, nil
}

// parsePerfdhcp reads perfdhcp's final report and its -x t timestamps
// ("sent / received: 000001.234567 / 000001.235012").
func parsePerfdhcp(out string) (dhcpResult, error) {
	var r dhcpResult
	var delays []float64
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "sent packets", "received packets", "drops", "orphans":
			n, err := strconv.Atoi(val)
			if err != nil {
				return r, fmt.Errorf("%q: %w", line, err)
			}
			switch key {
			case "sent packets":
				r.Sent = n
			case "received packets":
				r.Received = n
			case "drops":
				r.Drops = n
			case "orphans":
				r.Orphans = n
			}
			seen[key] = true
		case "Rate":
			f := strings.Fields(val)
			if len(f) == 0 {
				return r, fmt.Errorf("%q: no rate", line)
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return r, fmt.Errorf("%q: %w", line, err)
			}
			r.Rate = v
			seen[key] = true
		case "sent / received":
			a, bb, ok := strings.Cut(val, "/")
			if !ok {
				continue
			}
			s, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
			t, err2 := strconv.ParseFloat(strings.TrimSpace(bb), 64)
			if err1 != nil || err2 != nil {
				continue
			}
			delays = append(delays, (t-s)*1000)
		}
	}
	for _, k := range []string{"sent packets", "received packets", "drops", "Rate"} {
		if !seen[k] {
			return r, fmt.Errorf("no %q line", k)
		}
	}
	sort.Float64s(delays)
	r.Samples = len(delays)
	if len(delays) > 0 {
		r.P50 = percentile(delays, 50)
		r.P99 = percentile(delays, 99)
		r.Max = delays[len(delays)-1]
	}
	return r, nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
