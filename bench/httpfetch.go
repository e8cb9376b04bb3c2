package main

// The http-fetch subcommand: one node's plain HTTP download of an image,
// run by the rack section in each node's namespace.

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// httpFetchMain downloads --url to --out, hashing as it writes, and prints
// "verified-bytes N" when the sha256 matches --sha256.
func httpFetchMain(args []string) int {
	fs := flag.NewFlagSet("http-fetch", flag.ContinueOnError)
	url := fs.String("url", "", "what to download")
	out := fs.String("out", "", "where to write it")
	want := fs.String("sha256", "", "expected sha256, hex")
	if err := fs.Parse(args); err != nil || *url == "" || *out == "" || *want == "" {
		fmt.Fprintln(os.Stderr, "usage: bench http-fetch --url URL --out FILE --sha256 HEX")
		return 2
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp, err := http.Get(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "GET %s: %s\n", *url, resp.Status)
		return 1
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "GET %s: after %d bytes: %v\n", *url, n, err)
		return 1
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != *want {
		fmt.Fprintf(os.Stderr, "GET %s: sha256 %s, want %s\n", *url, got, *want)
		return 1
	}
	fmt.Printf("verified-bytes %d\n", n)
	return 0
}
