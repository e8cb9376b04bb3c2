package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/pin/tftp/v3"
)

// xferResult is one TFTP or HTTP load run: clients downloading the same
// file at once, each again and again until the run's time is up.
type xferResult struct {
	Transfers int     `json:"transfers"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"` // from the first start to the last end
	MBps      float64 `json:"mb_per_s"`
	P50       float64 `json:"p50_ms"` // per completed transfer
	P99       float64 `json:"p99_ms"`
}

// loadFlags are the flags shared by the load generators.
type loadFlags struct {
	size     int64
	clients  int
	duration time.Duration
}

func (l *loadFlags) register(fs *flag.FlagSet) {
	fs.Int64Var(&l.size, "size", 0, "expected size of the file (a transfer of any other size is an error)")
	fs.IntVar(&l.clients, "clients", 1, "clients at once")
	fs.DurationVar(&l.duration, "duration", 5*time.Second, "each client starts new downloads until this has passed")
}

// maxPerClient bounds the downloads of one client whatever the duration.
const maxPerClient = 100000

// runLoad runs fetch from l.clients goroutines until l.duration has passed
// (each client completes at least one download) and sums up.
func runLoad(l loadFlags, fetch func() (int64, error)) xferResult {
	var (
		mu    sync.Mutex
		times []float64
		res   xferResult
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(l.duration)
	for range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failures := 0
			for i := 0; i < maxPerClient; i++ {
				t0 := time.Now()
				n, err := fetch()
				d := time.Since(t0)
				if err == nil && n != l.size {
					err = fmt.Errorf("got %d bytes, want %d", n, l.size)
				}
				mu.Lock()
				if err != nil {
					res.Errors++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
					failures++
				} else {
					res.Transfers++
					res.Bytes += n
					times = append(times, float64(d)/float64(time.Millisecond))
					failures = 0
				}
				mu.Unlock()
				if time.Now().After(deadline) || failures >= 10 {
					return
				}
				if err != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.MBps = float64(res.Bytes) / 1e6 / res.Seconds
	}
	sort.Float64s(times)
	res.P50 = percentile(times, 50)
	res.P99 = percentile(times, 99)
	return res
}

func printResult(r xferResult) int {
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// tftpLoadMain is `bench tftp-load`: pin/tftp clients, blksize 1468 (an
// Ethernet frame), reading octet-mode transfers to the end.
func tftpLoadMain(args []string) int {
	fs := flag.NewFlagSet("tftp-load", flag.ContinueOnError)
	var l loadFlags
	l.register(fs)
	addr := fs.String("addr", srvAddr+":69", "TFTP server")
	file := fs.String("file", "", "file to fetch")
	blksize := fs.Int("blksize", 1468, "TFTP block size option")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fetch := func() (int64, error) {
		c, err := tftp.NewClient(*addr)
		if err != nil {
			return 0, err
		}
		c.SetBlockSize(*blksize)
		c.SetTimeout(2 * time.Second)
		c.SetRetries(5)
		wt, err := c.Receive(*file, "octet")
		if err != nil {
			return 0, err
		}
		return wt.WriteTo(discard{})
	}
	return printResult(runLoad(l, fetch))
}

// discard is io.Discard without its ReadFrom, so copies use our buffer.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// httpLoadMain is `bench http-load`: Go's HTTP client, a new connection
// per download (as iPXE and the node client make), body read in 256 KiB
// chunks and dropped.
func httpLoadMain(args []string) int {
	fs := flag.NewFlagSet("http-load", flag.ContinueOnError)
	var l loadFlags
	l.register(fs)
	url := fs.String("url", "", "URL to fetch")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true, Proxy: nil},
		Timeout:   5 * time.Minute,
	}
	bufs := sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
	fetch := func() (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: %s", *url, resp.Status)
		}
		buf := bufs.Get().(*[]byte)
		defer bufs.Put(buf)
		var n int64
		for {
			m, err := resp.Body.Read(*buf)
			n += int64(m)
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
		}
	}
	return printResult(runLoad(l, fetch))
}
