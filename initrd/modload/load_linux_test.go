package modload

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLoadParallel: each module loads after its dependencies, modules that
// do not need each other load at the same time, and a failed dependency
// keeps its users from loading.
func TestLoadParallel(t *testing.T) {
	_, d := mustParse(t)
	order, _ := Closure(d, []string{"virtio_net", "virtio_pci", "ahci", "sd_mod"}, nil, func(Module) bool { return true })
	var mu sync.Mutex
	loaded := map[string]bool{}
	running, most := 0, 0
	res := LoadParallel(d, order, func(name string) error {
		mu.Lock()
		for _, dep := range d[name].Deps {
			if !loaded[dep] {
				t.Errorf("%s loads before its dependency %s", name, dep)
			}
		}
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running--
		loaded[name] = true
		mu.Unlock()
		if name == "libata" {
			return errors.New("no such device")
		}
		return nil
	})
	if most < 3 {
		t.Errorf("at most %d modules loaded at once; the roots failover, virtio, virtio_ring, scsi_common... could all load together", most)
	}
	for name, err := range res {
		switch name {
		case "libata":
			if err == nil {
				t.Error("libata's error is lost")
			}
		case "libahci", "ahci":
			if err == nil || !strings.Contains(err.Error(), "dependency libata") || loaded[name] {
				t.Errorf("%s: err %v, loaded %v; want it not loaded, its error naming libata", name, err, loaded[name])
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if len(res) != len(order) {
		t.Errorf("%d results for %d modules", len(res), len(order))
	}
}

// fakeTree writes a module tree (modules.dep, modules.alias, empty module
// files) and a sysfs with the given devices, and returns a loader whose
// loading is recorded, and adds the devices in adds[module] when module
// loads (as virtio_pci adds the virtio devices).
func fakeTree(t *testing.T, devices []string, adds map[string][]string) (*Loader, *[]string) {
	t.Helper()
	dir, sys := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(testDep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.alias"), []byte(testAliases), 0o644); err != nil {
		t.Fatal(err)
	}
	mods, _ := ParseDep(strings.NewReader(testDep))
	for _, m := range mods {
		if strings.Contains(m.Path, "/absent/") {
			continue
		}
		os.MkdirAll(filepath.Join(dir, filepath.Dir(m.Path)), 0o755)
		os.WriteFile(filepath.Join(dir, m.Path), nil, 0o644)
	}
	n := 0
	addDevice := func(modalias string) {
		n++
		p := filepath.Join(sys, "devices", "pci0000:00", strings.Repeat("d/", n%3), modalias[:3]+string(rune('a'+n)))
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "modalias"), []byte(modalias+"\n"), 0o444)
	}
	for _, m := range devices {
		addDevice(m)
	}
	l, err := Open(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l.sysfs = sys
	var mu sync.Mutex
	var log []string
	l.loadFn = func(name string) error {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, name)
		for _, m := range adds[name] {
			addDevice(m)
		}
		return nil
	}
	return l, &log
}

const (
	virtioNetPCI = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
	virtioBlkPCI = "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
	ahciPCI      = "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
)

// TestRoundRescans: the network stage loads virtio_pci for the NIC, then
// virtio_net for the virtio device virtio_pci added, and nothing for the
// disk; the rest loads the disk drivers, the SCSI disk AlwaysLoad names and
// no module twice; a last round finds nothing new.
func TestRoundRescans(t *testing.T) {
	l, loaded := fakeTree(t, []string{virtioNetPCI, virtioBlkPCI, ahciPCI, "platform:serial8250"}, map[string][]string{
		"virtio_pci": {"virtio:d00000001v00001AF4", "virtio:d00000002v00001AF4"},
	})
	if n := l.Round(IsNetwork, nil); n != 8 {
		t.Errorf("network stage loaded %d modules, want 8: %v", n, *loaded)
	}
	net := append([]string(nil), *loaded...)
	sort.Strings(net)
	if diff := cmp.Diff([]string{"failover", "net_failover", "virtio", "virtio_net", "virtio_pci", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring"}, net); diff != "" {
		t.Errorf("network stage: %s", diff)
	}
	*loaded = nil
	l.Round(nil, AlwaysLoad)
	rest := append([]string(nil), *loaded...)
	sort.Strings(rest)
	if diff := cmp.Diff([]string{"ahci", "libahci", "libata", "loop", "overlay", "scsi_common", "scsi_mod", "sd_mod", "squashfs", "virtio_blk"}, rest); diff != "" {
		t.Errorf("second stage: %s", diff)
	}
	*loaded = nil
	if n := l.Round(nil, AlwaysLoad); n != 0 || len(*loaded) != 0 {
		t.Errorf("a last round loaded %v", *loaded)
	}
}

// TestRoundWithoutAliases: an archive without modules.alias loads every
// module it holds, as nodes did before.
func TestRoundWithoutAliases(t *testing.T) {
	l, loaded := fakeTree(t, nil, nil)
	os.Remove(filepath.Join(l.dir, "modules.alias"))
	l2, err := Open(l.dir, l.log)
	if err != nil {
		t.Fatal(err)
	}
	l2.sysfs, l2.loadFn = l.sysfs, l.loadFn
	if n := l2.Round(IsNetwork, nil); n != 19 {
		t.Errorf("loaded %d modules, want the 19 the archive holds: %v", n, *loaded)
	}
}

func TestModaliases(t *testing.T) {
	l, _ := fakeTree(t, []string{virtioNetPCI, ahciPCI, virtioNetPCI}, nil)
	got, err := Modaliases(l.sysfs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{virtioNetPCI, ahciPCI}, got); diff != "" {
		t.Error(diff)
	}
}
