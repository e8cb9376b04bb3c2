// Command moobi is the Moobi network-boot appliance: proxy DHCP, TFTP and
// HTTP boot services over one inventory (hosts.yaml).
//
//	moobi serve --config hosts.yaml
//	moobi check --config hosts.yaml
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"moobi/bootserver"
	"moobi/bootserver/dashboard"
	"moobi/initrd/build"
	"moobi/inventory"
	"moobi/logbuf"
	"moobi/metrics"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: moobi <command> [flags]

commands:
  serve    --config hosts.yaml   run the appliance
  check    --config hosts.yaml   validate an inventory
  image add --config hosts.yaml --name NAME --kernel FILE --rootfs FILE [--modules DIR] [--version V] [--no-current]
  image list --config hosts.yaml
  node fetch --server URL --mac MAC --dir DIR [--pubkey FILE] [--seed-for DURATION]
  status   --server URL          the nodes and their boot state
  initrd build (--config hosts.yaml | --out FILE --key KEYFILE | --out FILE --base-only) [--base FILE] [--src DIR]
                                 build the node initramfs, carrying the boot signing public key
  power status|on|off|cycle|pxe [--server URL] [--token-file FILE] [--config hosts.yaml] TARGET...
                                 drive the targets' BMCs through the appliance (TARGET: host, glob, profile:NAME, all)
  rollout start|status|pause|resume|abort|pins|unpin
                                 move hosts to an image version in batches, through the appliance; list and clear version pins (see moobi rollout)
  version                        print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "image":
		return image(args[1:], stdout, stderr)
	case "node":
		return node(args[1:], stdout, stderr)
	case "initrd":
		return initrd(args[1:], stdout, stderr)
	case "status":
		return status(args[1:], stdout, stderr)
	case "power":
		return powerCmd(args[1:], stdout, stderr)
	case "rollout":
		return rolloutCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "moobi", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "moobi: unknown command %q\n%s", args[0], usage)
	return 2
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "hosts.yaml", "inventory file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	inv, err := inventory.Load(*config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d hosts, %d profiles)\n", *config, len(inv.Hosts), len(inv.Profiles))
	return 0
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "hosts.yaml", "inventory file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	initrdBase := fs.String("initrd-base", "", "a base node initramfs (moobi initrd build --base-only): at start, write appliance.node_initrd from it with this appliance's signing key")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// A line per DHCP reply and HTTP request: written in batches, at most
	// logbuf.Delay late, warnings and errors at once.
	lw := logbuf.New(stderr, logbuf.Delay)
	defer lw.Close()
	log, err := newLogger(lw, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "moobi serve:", err)
		return 2
	}
	log = slog.New(logbuf.Handler(log.Handler(), lw, slog.LevelWarn))
	store, err := inventory.Open(*config, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	signer, err := loadSigner(store.Current().Appliance.SigningKey, log)
	if err != nil {
		log.Error("moobi serve failed", "err", err)
		return 1
	}
	if *initrdBase != "" {
		app := store.Current().Appliance
		if err := build.WithKey(*initrdBase, signer.Public(), app.NodeInitrd); err != nil {
			log.Error("moobi serve failed: node initramfs", "base", *initrdBase, "err", err)
			return 1
		}
		log.Info("node initramfs written with this appliance's key", "file", app.NodeInitrd, "base", *initrdBase, "key_id", signer.KeyID())
	}
	svc := &bootserver.Service{Store: store, Metrics: metrics.New(), Log: log, HUP: hup, Signer: signer, Dashboard: dashboard.Handler()}
	if err := svc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("moobi serve failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
