package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"moobi/bootserver"
	"moobi/images/builder"
	"moobi/images/catalog"
	"moobi/images/rootfs"
	"moobi/inventory"
	"moobi/rollout"
)

func image(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: moobi image add|build|list --config hosts.yaml ...")
		return 2
	}
	switch args[0] {
	case "add":
		return imageAdd(args[1:], stdout, stderr)
	case "build":
		return imageBuild(args[1:], stdout, stderr)
	case "list":
		return imageList(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "moobi image: unknown command %q (want add, build or list)\n", args[0])
	return 2
}

func openCatalog(config string) (*inventory.Inventory, *catalog.Catalog, error) {
	inv, err := inventory.Load(config)
	if err != nil {
		return nil, nil, err
	}
	cat, err := catalog.Open(filepath.Join(inv.Appliance.DataDir, "images"))
	if err != nil {
		return nil, nil, fmt.Errorf("image catalog: %w", err)
	}
	return inv, cat, nil
}

func imageAdd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "hosts.yaml", "inventory file")
	name := fs.String("name", "", "image name")
	kernel := fs.String("kernel", "", "the image's kernel")
	rootfs := fs.String("rootfs", "", "the image's root filesystem (squashfs)")
	modules := fs.String("modules", "", "the kernel's module folder (lib/modules/VERSION); the modules a node needs to boot are packed")
	version := fs.String("version", "", "version name (default: the next vN)")
	keep := fs.Int("keep", catalog.DefaultKeep, "versions to keep")
	noCurrent := fs.Bool("no-current", false, "publish without making the version current (stage it for moobi rollout)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *name == "" || *kernel == "" || *rootfs == "" {
		fmt.Fprintln(stderr, "moobi image add: --name, --kernel and --rootfs are required")
		return 2
	}
	inv, cat, err := openCatalog(*config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	opts, err := publishOptions(inv, *name, *version, *keep, *noCurrent)
	if err != nil {
		fmt.Fprintf(stderr, "moobi image add: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := cat.Publish(ctx, *name, catalog.Sources{Kernel: *kernel, Rootfs: *rootfs, Modules: *modules}, opts)
	return printPublished("moobi image add", cat, m, err, stdout, stderr)
}

// publishOptions are the catalog.PublishOptions for the appliance of inv.
// The announce and web seed URLs stored in the .torrent are only a default:
// the appliance serves the .torrent with the URLs it is reached at.
// Versions hosts are pinned to (data_dir/state/rollouts.json) are never
// pruned.
// An unreadable state file is an error: pruning without knowing the pins
// could remove a version hosts boot.
func publishOptions(inv *inventory.Inventory, name, version string, keep int, noCurrent bool) (catalog.PublishOptions, error) {
	o := catalog.PublishOptions{Version: version, Keep: keep, NoCurrent: noCurrent}
	st, err := rollout.Load(filepath.Join(inv.Appliance.DataDir, "state", rollout.FileName))
	if err != nil {
		return o, fmt.Errorf("the pinned versions are unknown, so nothing is published (mend or move the file aside): %w", err)
	}
	for _, p := range st.Pins {
		if p.Image == name && !slices.Contains(o.Protect, p.Version) {
			o.Protect = append(o.Protect, p.Version)
		}
	}
	for _, r := range st.Rollouts {
		if r.Image == name && r.State.Active() && !slices.Contains(o.Protect, r.Version) {
			o.Protect = append(o.Protect, r.Version)
		}
	}
	if ip, err := bootserver.ServerIP(inv.Appliance); err == nil {
		base := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(inv.Appliance.HTTPPort))
		o.Announce, o.WebSeed = base+"/announce", base+"/images/{name}/{version}/"
	}
	return o, nil
}

// printPublished prints what Publish returned: "published NAME version V
// (current)" first (tests parse it), or "(staged; current is W)" for a
// version published with --no-current, then the infohash and the size.
func printPublished(cmd string, cat *catalog.Catalog, m *catalog.Manifest, err error, stdout, stderr io.Writer) int {
	if err != nil && m == nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	state := "current"
	if cur, cerr := cat.Current(m.Name); cerr == nil && cur.Version != m.Version {
		state = "staged; current is " + cur.Version
	}
	fmt.Fprintf(stdout, "published %s version %s (%s)\ninfohash %s\nrootfs %d bytes, %d pieces of %d KiB\n",
		m.Name, m.Version, state, m.InfoHash, m.Files[catalog.FileRootfs].Size, m.Pieces, m.PieceLength>>10)
	if err != nil {
		fmt.Fprintf(stderr, "%s: published, but: %v\n", cmd, err)
	}
	return 0
}

func imageBuild(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: moobi image build --config hosts.yaml --name NAME [--version V] [--kernel FILE --modules DIR] [--keep N] SOURCE")
		fmt.Fprintln(stderr, "SOURCE: a root filesystem folder, a tarball (tar, gzip or zstd), oci:DIR, oci-archive:FILE or docker-archive:FILE")
		fs.PrintDefaults()
	}
	config := fs.String("config", "hosts.yaml", "inventory file")
	name := fs.String("name", "", "image name")
	version := fs.String("version", "", "version name (default: the next vN)")
	kernel := fs.String("kernel", "", "kernel image to use instead of the root's newest /boot/vmlinuz-*")
	modules := fs.String("modules", "", "module tree to use instead of the root's lib/modules/RELEASE")
	keep := fs.Int("keep", catalog.DefaultKeep, "versions to keep")
	noCurrent := fs.Bool("no-current", false, "publish without making the version current (stage it for moobi rollout)")
	level := fs.Int("zstd-level", builder.DefaultZstdLevel, "squashfs zstd compression level, 1 (fastest) to 22 (smallest)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *level < 1 || *level > 22 {
		fmt.Fprintf(stderr, "moobi image build: --zstd-level %d is not between 1 and 22\n", *level)
		return 2
	}
	if *name == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	src, err := rootfs.ParseSource(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "moobi image build: %v\n", err)
		return 1
	}
	inv, cat, err := openCatalog(*config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	opts, err := publishOptions(inv, *name, *version, *keep, *noCurrent)
	if err != nil {
		fmt.Fprintf(stderr, "moobi image build: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	r, err := builder.Build(ctx, cat, *name, builder.Options{Source: src, Kernel: *kernel, Modules: *modules, ZstdLevel: *level,
		WorkDir: inv.Appliance.DataDir, Log: stderr, Publish: opts})
	var m *catalog.Manifest
	if r != nil {
		m = r.Manifest
	}
	if code := printPublished("moobi image build", cat, m, err, stdout, stderr); code != 0 {
		return code
	}
	fmt.Fprintf(stdout, "kernel %s (%s)\n", r.Kernel.Name, r.Kernel.Release)
	fmt.Fprintf(stdout, "source %s, root %s, squashfs %s (%.1f%% of the source, %.1f%% of the root)\n",
		builder.MiB(r.SourceBytes), builder.MiB(r.RootBytes), builder.MiB(r.SquashfsBytes),
		percent(r.SquashfsBytes, r.SourceBytes), percent(r.SquashfsBytes, r.RootBytes))
	fmt.Fprintf(stdout, "took %s: extract %s, mksquashfs %s, publish %s\n", time.Since(start).Round(100*time.Millisecond),
		r.Extract.Round(100*time.Millisecond), r.Squash.Round(100*time.Millisecond), r.Publish.Round(100*time.Millisecond))
	return 0
}

func percent(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) * 100 / float64(b)
}

func imageList(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "hosts.yaml", "inventory file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	_, cat, err := openCatalog(*config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	imgs, err := cat.List()
	if err != nil {
		fmt.Fprintf(stderr, "moobi image list: %v\n", err)
		return 1
	}
	w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tVERSION\tCURRENT\tROOTFS\tINFOHASH\tCREATED")
	for _, img := range imgs {
		for _, m := range img.Versions {
			cur := ""
			if m.Version == img.Current {
				cur = "*"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", img.Name, m.Version, cur, m.Files[catalog.FileRootfs].Size, m.InfoHash, m.Created.Format("2006-01-02 15:04:05"))
		}
	}
	w.Flush()
	return 0
}
