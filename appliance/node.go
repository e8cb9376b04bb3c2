package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"moobi/bootsign"
	"moobi/initrd/fetch"
	"moobi/inventory"
)

func node(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "fetch" {
		fmt.Fprintln(stderr, "usage: moobi node fetch --server URL --mac MAC --dir DIR [--pubkey FILE] [--seed-for DURATION]")
		return 2
	}
	fs := flag.NewFlagSet("node fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "the appliance's HTTP root, e.g. http://10.99.0.1:8080")
	macText := fs.String("mac", "", "the node's MAC address")
	dir := fs.String("dir", "", "cache folder")
	version := fs.String("version", "", "image version (default: current)")
	pubkey := fs.String("pubkey", "", "the appliance's boot signing public key (or private key) file: boot configs whose signature does not verify are refused")
	seedFor := fs.Duration("seed-for", 0, "keep seeding this long after the image verified")
	port := fs.Int("port", 0, "BitTorrent peer port (default 6881)")
	webSeedAfter := fs.Duration("webseed-after", 10*time.Second, "use the appliance's web seed after this long without data")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole run to this file (for benchmarks)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "moobi node fetch: --cpuprofile: %v\n", err)
			return 2
		}
		defer stopProfile()
	}
	if *server == "" || *macText == "" || *dir == "" {
		fmt.Fprintln(stderr, "moobi node fetch: --server, --mac and --dir are required")
		return 2
	}
	mac, err := inventory.ParseMAC(*macText)
	if err != nil {
		fmt.Fprintf(stderr, "moobi node fetch: --mac: %v\n", err)
		return 2
	}
	log, err := newLogger(stderr, *level, "text")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	o := fetch.Options{Server: *server, MAC: mac, Dir: *dir, Version: *version, Port: *port, WebSeedAfter: *webSeedAfter, Log: log}
	if *pubkey != "" {
		if o.PublicKey, err = bootsign.LoadPublicKey(*pubkey); err != nil {
			fmt.Fprintf(stderr, "moobi node fetch: --pubkey: %v\n", err)
			return 2
		}
		log.Info("boot config signatures are checked", "key_id", bootsign.KeyID(o.PublicKey), "file", *pubkey)
	} else {
		o.AllowUnsigned = true
		log.Warn("no --pubkey: the boot config's signature is not checked, so any server answering at --server can choose the image")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The appliance answers a node's requests only with the boot token of
	// a script it fetched, as iPXE would.
	if o.BootToken, err = fetch.ScriptToken(ctx, o); err != nil {
		fmt.Fprintf(stderr, "moobi node fetch: %v\n", err)
		return 1
	}
	s, err := fetch.Fetch(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "moobi node fetch: %v\n", err)
		return 1
	}
	defer s.Close()
	st := s.Stats
	fmt.Fprintf(stdout, "verified %s %s: %s\nsize %d reused %d from_peers %d from_appliance %d from_webseed %d seconds %.2f first_byte %.3f\n",
		s.Config.Image, s.Config.Version, s.Path, st.Size, st.Reused, st.FromPeers, st.FromApp, st.FromSeed, st.Duration.Seconds(), st.FirstByte.Seconds())
	if *seedFor > 0 {
		select {
		case <-time.After(*seedFor):
		case <-ctx.Done():
		}
		fmt.Fprintf(stdout, "uploaded %d\n", s.Uploaded())
	}
	return 0
}

// startCPUProfile starts a Go CPU profile written to path; the function it
// returns stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
