// Package builder turns a root filesystem (a folder, a tarball or an OCI
// image) into a catalog image: it unpacks the source safely (package
// rootfs), takes the kernel and its modules from the root, packs the root
// with mksquashfs and publishes the result with catalog.Publish.
package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"moobi/images/catalog"
	"moobi/images/rootfs"
)

// Options say what to build and where.
type Options struct {
	Source  rootfs.Source
	Kernel  string // a kernel image to use instead of the root's
	Modules string // a module tree to use instead of the root's
	// ZstdLevel is the squashfs's zstd level, 1 to 22 (0: DefaultZstdLevel).
	ZstdLevel int
	// WorkDir is where the staging folder and the squashfs are made (and
	// removed afterwards): a folder on the catalog's filesystem.
	WorkDir string
	Log     io.Writer     // progress lines (nil: none)
	Every   time.Duration // how often long steps say how far they are (0: 5 s)
	Publish catalog.PublishOptions
}

// Report says what Build did.
type Report struct {
	Manifest *catalog.Manifest
	Kernel   Kernel // the kernel published (Path, Release and Modules as used)
	Unpack   rootfs.Result
	// SourceBytes is the size of the source as stored (a folder: its
	// files), RootBytes the size of the root's files, SquashfsBytes the
	// size of the squashfs.
	SourceBytes, RootBytes, SquashfsBytes int64
	Extract, Squash, Publish              time.Duration
}

// Build makes image name of cat from o.Source. Nothing is published on
// error; the staging folder and the squashfs are removed in every case.
// Like catalog.Publish, it returns the manifest with an error if only
// pruning old versions failed.
func Build(ctx context.Context, cat *catalog.Catalog, name string, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(o.WorkDir, ".image-build-")
	if err != nil {
		return nil, err
	}
	defer func() {
		fmt.Fprintf(o.Log, "removing %s\n", work)
		os.RemoveAll(work)
	}()
	r := &Report{}
	root := o.Source.Path
	if o.Source.Kind == rootfs.Folder {
		if r.RootBytes, err = treeSize(root); err != nil {
			return nil, fmt.Errorf("source %s: %w", root, err)
		}
		r.SourceBytes = r.RootBytes
	} else {
		root = filepath.Join(work, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			return nil, err
		}
		if err := unpack(ctx, o, root, r); err != nil {
			return nil, err
		}
	}
	if err := pickKernel(root, o, r); err != nil {
		return nil, err
	}
	sqfs := filepath.Join(work, "rootfs.squashfs")
	if err := squash(ctx, o, root, sqfs, r); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "publishing: copying the kernel and the squashfs, packing the modules, hashing the torrent's pieces\n")
	start := time.Now()
	var read atomic.Int64
	o.Publish.Progress = &read
	stop := every(ctx, o.Every, func() {
		fmt.Fprintf(o.Log, "publishing: %s of %s read (copy and sha256, then torrent pieces), %s\n",
			MiB(read.Load()), MiB(2*r.SquashfsBytes), time.Since(start).Round(time.Second))
	})
	r.Manifest, err = cat.Publish(ctx, name, catalog.Sources{Kernel: r.Kernel.Path, Rootfs: sqfs, Modules: r.Kernel.Modules}, o.Publish)
	stop()
	r.Publish = time.Since(start)
	if r.Manifest == nil {
		return nil, err
	}
	return r, err
}

func unpack(ctx context.Context, o Options, root string, r *Report) error {
	var p rootfs.Progress
	fmt.Fprintf(o.Log, "extracting %s into %s\n", o.Source, root)
	start := time.Now()
	stop := every(ctx, o.Every, func() {
		read, total := p.Read.Load(), p.Total.Load()
		if total > 0 {
			fmt.Fprintf(o.Log, "extracting: %s of %s read (%d%%), %s\n", MiB(read), MiB(total), read*100/total, time.Since(start).Round(time.Second))
		} else {
			fmt.Fprintf(o.Log, "extracting: %s read, %s\n", MiB(read), time.Since(start).Round(time.Second))
		}
	})
	res, err := rootfs.Unpack(ctx, o.Source, root, &p)
	stop()
	r.Extract = time.Since(start)
	if err != nil {
		return err
	}
	r.Unpack, r.SourceBytes, r.RootBytes = res, res.SourceBytes, res.Bytes
	what := string(res.Compression)
	if res.Layers > 0 {
		what = fmt.Sprintf("%d layers, %d whiteouts", res.Layers, res.Whiteouts)
	}
	fmt.Fprintf(o.Log, "extracted %s (%s): %d entries, %d files, %s, in %s\n",
		MiB(res.SourceBytes), what, res.Entries, res.Files, MiB(res.Bytes), r.Extract.Round(100*time.Millisecond))
	if res.DevSkipped > 0 {
		fmt.Fprintf(o.Log, "skipped %d entries under /dev/ (device nodes and links: the node mounts devtmpfs there)\n", res.DevSkipped)
	}
	return nil
}

// pickKernel sets r.Kernel from the root, or from o's overrides.
func pickKernel(root string, o Options, r *Report) error {
	k, err := FindKernel(root)
	switch {
	case o.Kernel != "" && o.Modules == "":
		return errors.New("--kernel needs --modules: the root's module trees belong to its own kernels")
	case o.Kernel != "":
		if _, serr := os.Stat(o.Kernel); serr != nil {
			return fmt.Errorf("--kernel: %w", serr)
		}
		k = Kernel{Path: o.Kernel, Name: o.Kernel, Release: "given"}
	case err != nil:
		return err
	default:
		fmt.Fprintf(o.Log, "kernel %s (release %s)\n", k.Name, k.Release)
		if len(k.Others) > 0 {
			fmt.Fprintf(o.Log, "also found kernels %s: took the newest, %s\n", strings.Join(k.Others, ", "), k.Release)
		}
	}
	if o.Modules != "" {
		k.Modules = o.Modules
	} else if k.Modules == "" {
		return fmt.Errorf("no module tree for kernel release %s in the root (/lib/modules/%[1]s or /usr/lib/modules/%[1]s): pass --modules DIR", k.Release)
	}
	fmt.Fprintf(o.Log, "modules %s\n", k.Modules)
	r.Kernel = k
	return nil
}

// DefaultZstdLevel is mksquashfs's own zstd level. Lower levels build
// faster and make larger images.
const DefaultZstdLevel = 15

// squash runs mksquashfs on root, saying how far it is as it goes.
func squash(ctx context.Context, o Options, root, out string, r *Report) error {
	level := o.ZstdLevel
	if level == 0 {
		level = DefaultZstdLevel
	}
	fmt.Fprintf(o.Log, "mksquashfs %s (zstd level %d, %s of files)\n", root, level, MiB(r.RootBytes))
	start := time.Now()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, "mksquashfs", root, out, "-comp", "zstd", "-Xcompression-level", strconv.Itoa(level), "-noappend", "-no-progress")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	stop := every(ctx, o.Every, func() {
		if fi, err := os.Stat(out); err == nil {
			fmt.Fprintf(o.Log, "mksquashfs: %s written, %s\n", MiB(fi.Size()), time.Since(start).Round(time.Second))
		}
	})
	err := cmd.Run()
	stop()
	r.Squash = time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mksquashfs: %w\n%s", err, tail(buf.String(), 20))
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	r.SquashfsBytes = fi.Size()
	fmt.Fprintf(o.Log, "squashfs %s in %s\n", MiB(r.SquashfsBytes), r.Squash.Round(100*time.Millisecond))
	return nil
}

// every calls f every d until stop is called or ctx ends.
func every(ctx context.Context, d time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// treeSize adds up the sizes of the regular files under root.
func treeSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// MiB formats a byte count in MiB (in KiB below 1 MiB).
func MiB(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
