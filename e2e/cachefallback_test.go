package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"moobi/lab"
)

// nodeDetail is what the test reads of /v1/nodes/{mac}.
type nodeDetail struct {
	State     string `json:"state"`
	LastError string `json:"last_error"`
	Events    []struct {
		Source  string `json:"source"`
		State   string `json:"state"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	} `json:"events"`
}

func getNode(t *testing.T, ctx context.Context, r *vmRack, mac string) nodeDetail {
	t.Helper()
	out, err := curl(ctx, r.l, r.url("/v1/nodes/"+mac))
	if err != nil {
		t.Fatal(err)
	}
	var n nodeDetail
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		t.Fatalf("/v1/nodes/%s: %v\n%s", mac, err, out)
	}
	return n
}

// TestCacheFallback: three BIOS VMs whose profiles name the cache device
// /dev/vda, booted at once.
//   - tiny-disk-node has a 1 MiB disk and cache_fallback: ram: it says on its
//     console and in an event that it caches in RAM, and runs the image.
//   - no-disk-node has no disk and cache_fallback: fail: it fails, naming
//     the missing device, and never pivots.
//   - small-ram-node has no disk, cache_fallback: ram and 192 MB of RAM, too
//     little for the image: it fails before downloading, naming the RAM
//     cache's free bytes and what the image needs.
//   - bad-disk-node has a cache disk big enough whose every write fails
//     (qemu's blkdebug, EIO passed to the guest): its download ends with a
//     failed event naming the device and the I/O error, instead of hanging.
func TestCacheFallback(t *testing.T) {
	lab.RequireRoot(t, "qemu-system-x86_64", "curl", "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	tiny := rackNode{"tiny-disk-node", "52:54:00:cf:00:01", lab.BIOS}
	noDisk := rackNode{"no-disk-node", "52:54:00:cf:00:02", lab.BIOS}
	smallRAM := rackNode{"small-ram-node", "52:54:00:cf:00:03", lab.BIOS}
	badDisk := rackNode{"bad-disk-node", "52:54:00:cf:00:04", lab.BIOS}
	r := newVMRack(t, ctx, vmRackOptions{
		hosts: []rackNode{tiny, noDisk, smallRAM, badDisk},
		// With the overlay's margin, more than half of a 192 MB VM's RAM
		// (the size of its /run tmpfs), well under half of 768 MB.
		imageMiB: 80,
		profile:  "cache: /dev/vda\ncache_fallback: ram",
		hostProfile: map[string]string{
			noDisk.name: "cache: /dev/vda\ncache_fallback: fail",
		},
	})
	disk := filepath.Join(r.l.Dir(), "tiny.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	// Every write to bad.img fails with EIO; reads work.
	bad, badCfg := filepath.Join(r.l.Dir(), "bad.img"), filepath.Join(r.l.Dir(), "blkdebug.cfg")
	writeFile(t, badCfg, "[inject-error]\nevent = \"pwritev\"\nerrno = \"5\"\n")
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(bad, 128<<20); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	var g errgroup.Group
	var mu sync.Mutex
	consoles := map[string]string{}
	boot := func(n rackNode, memMB int, disk string, check func(vm *lab.VM) error, extra ...string) {
		vm, err := r.l.StartVM(ctx, lab.VMOptions{Name: n.name, MAC: n.mac, Firmware: n.fw, MemoryMB: memMB, DiskPath: disk, ExtraArgs: extra})
		if err != nil {
			t.Fatal(err)
		}
		g.Go(func() error {
			defer vm.Stop()
			err := check(vm)
			mu.Lock()
			consoles[n.name] = vm.Console()
			mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v\n%s", n.name, err, lab.Tail(vm.Console(), 30))
			}
			return nil
		})
	}
	waitFor := func(vm *lab.VM, s string) error {
		wctx, wcancel := context.WithTimeout(ctx, 12*time.Minute)
		defer wcancel()
		return vm.WaitConsole(wctx, s)
	}
	var tinyLine, noDiskLine, smallRAMLine, badDiskLine string
	boot(tiny, 768, disk, func(vm *lab.VM) error {
		if err := waitFor(vm, lab.ImageMarker+tiny.name); err != nil {
			return err
		}
		t.Logf("%s ran its image after %.0fs", tiny.name, time.Since(start).Seconds())
		tinyLine = lastLine(vm.Console(), "MOOBI: cache device")
		return nil
	})
	boot(noDisk, 512, "", func(vm *lab.VM) error {
		if err := waitFor(vm, "MOOBI: boot failed: cache device /dev/vda"); err != nil {
			return err
		}
		t.Logf("%s failed after %.0fs", noDisk.name, time.Since(start).Seconds())
		noDiskLine = lastLine(vm.Console(), "MOOBI: boot failed")
		return nil
	})
	boot(smallRAM, 192, "", func(vm *lab.VM) error {
		if err := waitFor(vm, "MOOBI: boot failed: cache device /dev/vda"); err != nil {
			return err
		}
		t.Logf("%s failed after %.0fs", smallRAM.name, time.Since(start).Seconds())
		smallRAMLine = lastLine(vm.Console(), "MOOBI: boot failed")
		return nil
	})
	boot(badDisk, 512, "", func(vm *lab.VM) error {
		if err := waitFor(vm, "the cache /dev/vda at "); err != nil {
			return err
		}
		t.Logf("%s failed after %.0fs", badDisk.name, time.Since(start).Seconds())
		badDiskLine = lastLine(vm.Console(), "MOOBI: boot failed")
		return nil
	}, "-drive", "file=blkdebug:"+badCfg+":"+bad+",if=virtio,format=raw,werror=report")
	g.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%s console: %s", tiny.name, tinyLine)
	t.Logf("%s console: %s", noDisk.name, noDiskLine)
	t.Logf("%s console: %s", smallRAM.name, smallRAMLine)
	t.Logf("%s console: %s", badDisk.name, badDiskLine)

	// tiny-disk-node: running, from RAM, and its events say why.
	if !strings.Contains(tinyLine, "holds 1048576 bytes, the image needs") || !strings.Contains(tinyLine, "caching in RAM (cache_fallback: ram)") {
		t.Errorf("%s: console line %q, want the device's size and the fallback", tiny.name, tinyLine)
	}
	n := getNode(t, ctx, r, tiny.mac)
	fellBack := ""
	for _, e := range n.Events {
		if e.Source == "node" && strings.Contains(e.Message, "caching in RAM") {
			fellBack = e.Message
		}
	}
	if n.State != "running" || fellBack == "" || n.LastError != "" {
		t.Errorf("%s: state %q, last_error %q, fallback event %q; want running with the fallback in its events", tiny.name, n.State, n.LastError, fellBack)
	}
	t.Logf("%s: %s, event %q", tiny.name, n.State, fellBack)

	// no-disk-node: failed, naming the device; never pivoted.
	n = getNode(t, ctx, r, noDisk.mac)
	if n.State != "failed" || !strings.Contains(n.LastError, "cache device /dev/vda: open /dev/vda: no such file or directory") {
		t.Errorf("%s: state %q, last_error %q; want failed naming /dev/vda", noDisk.name, n.State, n.LastError)
	}
	t.Logf("%s: %s, last_error %q", noDisk.name, n.State, n.LastError)

	// small-ram-node: failed before any download, naming both figures.
	n = getNode(t, ctx, r, smallRAM.mac)
	if n.State != "failed" || !strings.Contains(n.LastError, "cache_fallback is ram, but RAM cache /run has ") ||
		!strings.Contains(n.LastError, " bytes free, the image needs ") {
		t.Errorf("%s: state %q, last_error %q; want failed with the RAM cache's figures", smallRAM.name, n.State, n.LastError)
	}
	for _, e := range n.Events {
		if e.State == "fetching" || e.State == "verified" {
			t.Errorf("%s: event %+v: it should not have started a download", smallRAM.name, e)
		}
	}
	t.Logf("%s: %s, last_error %q", smallRAM.name, n.State, n.LastError)
	// bad-disk-node: its failed event names the device and the error. (A
	// later attempt may find its pieces in the page cache and boot.)
	n = getNode(t, ctx, r, badDisk.mac)
	if !strings.Contains(n.LastError, "the cache /dev/vda at ") || !strings.Contains(n.LastError, "input/output error") {
		t.Errorf("%s: state %q, last_error %q; want the write error on /dev/vda", badDisk.name, n.State, n.LastError)
	}
	t.Logf("%s: %s, last_error %q", badDisk.name, n.State, n.LastError)
	for name, c := range consoles {
		if (name == noDisk.name || name == smallRAM.name) && strings.Contains(c, lab.ImageMarker) {
			t.Errorf("%s pivoted into its image", name)
		}
	}
}
