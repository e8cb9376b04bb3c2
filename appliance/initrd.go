package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"moobi/initrd/build"
	"moobi/inventory"
)

// initrd builds the node initramfs: `moobi initrd build --out FILE`, or
// `--config hosts.yaml` to write appliance.node_initrd. It runs the Go
// toolchain on this source tree (--src).
func initrd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "build" {
		fmt.Fprintln(stderr, "usage: moobi initrd build (--out FILE | --config hosts.yaml) [--src DIR]")
		return 2
	}
	fs := flag.NewFlagSet("initrd build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "where to write the gzip'd initramfs")
	config := fs.String("config", "", "inventory: write to its appliance.node_initrd")
	src := fs.String("src", ".", "the moobi source tree (the folder with go.mod)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if (*out == "") == (*config == "") {
		fmt.Fprintln(stderr, "moobi initrd build: give exactly one of --out and --config")
		return 2
	}
	if *config != "" {
		inv, err := inventory.Load(*config)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		*out = inv.Appliance.NodeInitrd
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := build.Initramfs(ctx, *src, *out, stderr); err != nil {
		fmt.Fprintf(stderr, "moobi initrd build: %v\n", err)
		return 1
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", *out, st.Size())
	return 0
}
