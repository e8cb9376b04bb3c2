package modload

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// Loader loads the modules of one module tree (/lib/modules/RELEASE).
// Its methods are not safe for concurrent use; Start runs them in order.
type Loader struct {
	dir     string
	sysfs   string
	log     *slog.Logger
	aliases []Alias                 // nil: no modules.alias, load everything
	mods    map[string]Module       // modules.dep
	tried   map[string]bool         // module -> loaded (false: failed)
	skipped map[string]bool         // reported as not loadable
	loaded  []string                // in load order
	loadFn  func(name string) error // l.load; tests replace it
}

// Open reads the module tree dir's modules.dep and modules.alias. Without
// modules.alias (an archive made before it was packed) the loader loads
// every module of the archive, as nodes used to.
func Open(dir string, log *slog.Logger) (*Loader, error) {
	l := &Loader{dir: dir, sysfs: "/sys", log: log, tried: map[string]bool{}, skipped: map[string]bool{}}
	l.loadFn = l.load
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	l.mods, err = ParseDep(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	f, err = os.Open(filepath.Join(dir, "modules.alias"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Warn("no modules.alias in the modules archive: loading every module", "dir", dir)
	case err != nil:
		return nil, err
	default:
		l.aliases, err = ParseAliases(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		if l.aliases == nil {
			l.aliases = []Alias{}
		}
	}
	return l, nil
}

func (l *Loader) have(m Module) bool {
	_, err := os.Stat(filepath.Join(l.dir, m.Path))
	return err == nil
}

// Modaliases returns the modaliases of the devices under root/devices
// (root is normally /sys), sorted, each once.
func Modaliases(root string) ([]string, error) {
	set := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "devices"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a device that went away, a folder we may not read
		}
		if d.Name() != "modalias" || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if s := strings.TrimSpace(string(b)); err == nil && s != "" {
			set[s] = true
		}
		return nil
	})
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, err
}

// Round loads, in parallel, the modules that the devices present ask for
// (only those whose modalias keep accepts, if keep is set) and extra, with
// their dependencies, and repeats until a scan of the devices asks for no
// module not yet tried. It returns how many modules it loaded.
func (l *Loader) Round(keep func(string) bool, extra []string) int {
	n := 0
	for pass := 0; pass < 16; pass++ {
		var want []string
		if l.aliases == nil {
			for name := range l.mods {
				want = append(want, name)
			}
			sort.Strings(want)
		} else {
			mas, err := Modaliases(l.sysfs)
			if err != nil {
				l.log.Warn("scanning devices", "err", err)
			}
			var use []string
			for _, m := range mas {
				if keep == nil || keep(m) {
					use = append(use, m)
				}
			}
			want = Wanted(l.aliases, use, extra)
		}
		fresh := want[:0:0]
		for _, name := range want {
			if _, tried := l.tried[name]; !tried && !l.skipped[name] {
				fresh = append(fresh, name)
			}
		}
		order, skipped := Closure(l.mods, fresh, l.tried, l.have)
		for _, name := range skipped {
			l.skipped[name] = true
		}
		if len(order) == 0 {
			return n
		}
		res := LoadParallel(l.mods, order, l.loadFn)
		for _, name := range order {
			err := res[name]
			l.tried[name] = err == nil
			if err != nil {
				l.log.Warn("kernel module not loaded", "module", name, "err", err)
				continue
			}
			n++
			l.loaded = append(l.loaded, name)
		}
		if l.aliases == nil {
			return n // everything was tried
		}
	}
	return n
}

// load loads one module: finit_module for a plain .ko (the kernel reads the
// file), kmodule's decompression otherwise. A module already in the kernel
// is loaded.
func (l *Loader) load(name string) error {
	f, err := os.Open(filepath.Join(l.dir, l.mods[name].Path))
	if err != nil {
		return err
	}
	defer f.Close()
	if strings.HasSuffix(f.Name(), ".ko") {
		err = unix.FinitModule(int(f.Fd()), "", 0)
	} else {
		err = kmodule.FileInit(f, "", 0)
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// Run is the node's module loading: the network drivers first (Start
// returns once they have loaded), the rest in the background (Wait).
type Run struct {
	l     *Loader
	start time.Time
	done  chan struct{}
	once  sync.Once
}

// Start loads the drivers of the machine's network devices, and returns;
// the modules that other devices ask for, and AlwaysLoad, keep loading in
// the background until Wait. dir is the module tree (/lib/modules/RELEASE).
// A tree that cannot be read is logged and leaves the built-in drivers.
func Start(dir string, log *slog.Logger) *Run {
	r := &Run{start: time.Now(), done: make(chan struct{})}
	l, err := Open(dir, log)
	if err != nil {
		log.Warn("no modules archive for this kernel; relying on built-in drivers", "dir", dir, "err", err)
		close(r.done)
		return r
	}
	r.l = l
	n := l.Round(IsNetwork, nil)
	log.Info("network modules loaded", "count", n, "seconds", seconds(time.Since(r.start)), "modules", strings.Join(l.loaded, ","))
	go func() {
		defer close(r.done)
		l.Round(nil, AlwaysLoad)
		log.Info("kernel modules loaded", "count", len(l.loaded), "seconds", seconds(time.Since(r.start)), "after_network", strings.Join(l.loaded[n:], ","))
	}()
	return r
}

// Wait waits for the background loading and, the first time, scans the
// devices once more for one that an adapter found late.
func (r *Run) Wait() {
	<-r.done
	if r.l == nil {
		return
	}
	r.once.Do(func() {
		before := len(r.l.loaded)
		if n := r.l.Round(nil, AlwaysLoad); n > 0 {
			r.l.log.Info("kernel modules loaded late", "count", n, "seconds", seconds(time.Since(r.start)), "modules", strings.Join(r.l.loaded[before:], ","))
		}
	})
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
