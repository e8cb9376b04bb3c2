package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"moobi/bootsign"
	"moobi/initrd/build"
	"moobi/inventory"
)

const initrdUsage = `usage: moobi initrd build --config hosts.yaml [--base FILE] [--src DIR]
       moobi initrd build --out FILE --key KEYFILE [--base FILE] [--src DIR]
       moobi initrd build --out FILE --base-only [--src DIR]`

// initrd builds the node initramfs: the base (u-root, slow) followed by a
// small archive holding the boot signing public key. `--config hosts.yaml`
// writes appliance.node_initrd with the public half of
// appliance.signing_key (creating the key if missing); `--out FILE` needs
// `--key` (a private or public key file). `--base FILE` reuses a base built
// by `--base-only`, so that one base serves many keys. The base is built by
// running the Go toolchain on this source tree (--src).
func initrd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "build" {
		fmt.Fprintln(stderr, initrdUsage)
		return 2
	}
	fs := flag.NewFlagSet("initrd build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "where to write the gzip'd initramfs")
	config := fs.String("config", "", "inventory: write to its appliance.node_initrd, trusting its appliance.signing_key")
	keyFile := fs.String("key", "", "with --out: the boot signing key file (private or public) whose public key the initramfs carries")
	base := fs.String("base", "", "a base initramfs built with --base-only, reused instead of building one")
	baseOnly := fs.Bool("base-only", false, "with --out: write the base initramfs only (no key: nodes booted with it alone refuse to boot)")
	src := fs.String("src", ".", "the moobi source tree (the folder with go.mod)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "moobi initrd build: %s\n%s\n", msg, initrdUsage)
		return 2
	}
	switch {
	case fs.NArg() != 0:
		return usage(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	case (*out == "") == (*config == ""):
		return usage("give exactly one of --out and --config")
	case *config != "" && (*keyFile != "" || *baseOnly):
		return usage("--config uses appliance.signing_key: --key and --base-only go with --out")
	case *baseOnly && (*keyFile != "" || *base != ""):
		return usage("--base-only builds a base without a key: no --key, no --base")
	case *out != "" && !*baseOnly && *keyFile == "":
		return usage("--out needs --key FILE (the appliance's boot signing key, private or public), or --base-only")
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "moobi initrd build: %v\n", err)
		return 1
	}
	var pub ed25519.PublicKey
	switch {
	case *config != "":
		inv, err := inventory.Load(*config)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		*out = inv.Appliance.NodeInitrd
		key, created, err := bootsign.LoadOrCreate(inv.Appliance.SigningKey)
		if err != nil {
			return fail(err)
		}
		pub = key.Public().(ed25519.PublicKey)
		if created {
			fmt.Fprintf(stdout, "created the boot signing key %s (key ID %s)\n", inv.Appliance.SigningKey, bootsign.KeyID(pub))
		}
	case *keyFile != "":
		var err error
		if pub, err = bootsign.LoadPublicKey(*keyFile); err != nil {
			return fail(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *baseOnly {
		if err := build.Initramfs(ctx, *src, *out, stderr); err != nil {
			return fail(err)
		}
		return wrote(stdout, stderr, *out, "base, no key")
	}
	if *base == "" {
		tmp, err := os.MkdirTemp("", "moobi-initrd-base-")
		if err != nil {
			return fail(err)
		}
		defer os.RemoveAll(tmp)
		*base = filepath.Join(tmp, "base.cpio.gz")
		if err := build.Initramfs(ctx, *src, *base, stderr); err != nil {
			return fail(err)
		}
	}
	if err := build.WithKey(*base, pub, *out); err != nil {
		return fail(err)
	}
	return wrote(stdout, stderr, *out, "trusting boot signing key ID "+bootsign.KeyID(pub))
}

func wrote(stdout, stderr io.Writer, path, what string) int {
	st, err := os.Stat(path)
	if err != nil {
		fmt.Fprintf(stderr, "moobi initrd build: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes; %s)\n", path, st.Size(), what)
	return 0
}
