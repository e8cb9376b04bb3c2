package main

// This machine can itself be a virtual machine whose kernel hands freed
// memory back to its hypervisor (free page reporting: blocks of
// 2^page_reporting_order pages, reported shortly after they are freed). The
// next write to such memory faults it back in from the hypervisor, which
// the writer pays for as system time. The rack and footprint labs keep
// every node's cache in one tmpfs of this machine, so the nodes' cache
// writes pay it, and their CPU figures then measure the hypervisor more
// than moobi: a real node's RAM is its own. With --rack-hold-memory the
// lab holds freed memory while it runs (page_reporting_order at its
// largest), writes as much into the caches' tmpfs as the nodes will once
// before the first run (and deletes it), and puts the order back when it
// closes; the results say what it did.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	reportingOrder = "/sys/module/page_reporting/parameters/page_reporting_order"
	// maxReportingOrder is the largest order the kernel accepts: only
	// free blocks of 4 MiB are then reported.
	maxReportingOrder = 10
)

// holdMemory raises the page_reporting_order parameter at param
// (reportingOrder) to maxReportingOrder and, when warm is a folder, writes
// bytes into a file there and removes it. It returns a function that puts
// the order back, and what it did, for the results.
func holdMemory(param, warm string, bytes int64) (restore func(), did string, err error) {
	restore = func() {}
	b, err := os.ReadFile(param)
	if os.IsNotExist(err) {
		return restore, "this machine reports no free memory to a hypervisor (no page_reporting): nothing to hold", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("hold memory: %w", err)
	}
	cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, "", fmt.Errorf("hold memory: %s: %q: %w", param, b, err)
	}
	if cur < maxReportingOrder {
		if err := os.WriteFile(param, []byte(strconv.Itoa(maxReportingOrder)), 0o644); err != nil {
			return nil, "", fmt.Errorf("hold memory: set %s to %d: %w", param, maxReportingOrder, err)
		}
		restore = func() { os.WriteFile(param, []byte(strconv.Itoa(cur)), 0o644) }
	}
	did = fmt.Sprintf("freed memory held for the hypervisor's free page reporting (page_reporting_order %d → %d while the lab ran, then %d again)", cur, max(cur, maxReportingOrder), cur)
	if warm == "" {
		return restore, did, nil
	}
	start := time.Now()
	if err := fill(filepath.Join(warm, ".warm"), bytes); err != nil {
		restore()
		return nil, "", fmt.Errorf("hold memory: warm the caches' tmpfs: %w", err)
	}
	return restore, fmt.Sprintf("%s; the caches' tmpfs warmed first by writing %d MiB into it and deleting them (%.1f s)", did, bytes>>20, time.Since(start).Seconds()), nil
}

// fill writes n zero bytes to a new file at path, then removes it.
func fill(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		n -= k
	}
	return f.Close()
}
