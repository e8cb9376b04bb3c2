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
	"strconv"
	"syscall"
	"text/tabwriter"

	"moobi/bootserver"
	"moobi/images/catalog"
	"moobi/inventory"
)

func image(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: moobi image add|list --config hosts.yaml ...")
		return 2
	}
	switch args[0] {
	case "add":
		return imageAdd(args[1:], stdout, stderr)
	case "list":
		return imageList(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "moobi image: unknown command %q (want add or list)\n", args[0])
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
	// The announce and web seed URLs stored in the .torrent are only a
	// default: the appliance serves the .torrent with the URLs it is
	// reached at.
	announce, webSeed := "", ""
	if ip, err := bootserver.ServerIP(inv.Appliance); err == nil {
		base := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(inv.Appliance.HTTPPort))
		announce, webSeed = base+"/announce", base+"/images/{name}/{version}/"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := cat.Publish(ctx, *name, catalog.Sources{Kernel: *kernel, Rootfs: *rootfs, Modules: *modules},
		catalog.PublishOptions{Version: *version, Keep: *keep, Announce: announce, WebSeed: webSeed})
	if err != nil && m == nil {
		fmt.Fprintf(stderr, "moobi image add: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "published %s version %s (current)\ninfohash %s\nrootfs %d bytes, %d pieces of %d KiB\n",
		m.Name, m.Version, m.InfoHash, m.Files[catalog.FileRootfs].Size, m.Pieces, m.PieceLength>>10)
	if err != nil {
		fmt.Fprintf(stderr, "moobi image add: published, but: %v\n", err)
	}
	return 0
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
